use cached_redis::redis_cached;

#[redis_cached(domain = "natal", companions = "yes")]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", companions = true)]
unsafe fn raw(day: u32) -> u32 {
    day
}

fn main() {}
