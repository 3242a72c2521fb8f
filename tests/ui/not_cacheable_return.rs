use cached_redis::redis_cached;

struct Chart;

#[redis_cached(domain = "natal")]
fn natal(day: u32) -> Chart {
    let _ = day;
    Chart
}

fn main() {}
