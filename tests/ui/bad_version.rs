use cached_redis::redis_cached;

#[redis_cached(domain = "natal", version = "v1:beta")]
fn natal(day: u32) -> u32 {
    day
}

fn main() {}
