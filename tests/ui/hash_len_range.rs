use cached_redis::redis_cached;

#[redis_cached(domain = "natal", hash_len = 4)]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", hash_len = "12")]
fn transit(day: u32) -> u32 {
    day
}

fn main() {}
