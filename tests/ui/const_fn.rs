use cached_redis::redis_cached;

#[redis_cached(domain = "natal")]
const fn natal(day: u32) -> u32 {
    day
}

fn main() {}
