use cached_redis::redis_cached;

#[redis_cached(domain = "natal", lock = "yes")]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", lock)]
fn natal_flag(day: u32) -> u32 {
    day
}

fn main() {}
