use cached_redis::redis_cached;

#[redis_cached(domain = "natal", near = "0s")]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", near = 'x')]
fn transit(day: u32) -> u32 {
    day
}

fn main() {}
