use cached_redis::redis_cached;

#[redis_cached(domain = "natal", expire = 60)]
fn natal(day: u32) -> u32 {
    day
}

fn main() {}
