use cached_redis::redis_cached;

#[redis_cached(domain = "natal", early_refresh = 0.0)]
fn natal(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", early_refresh = "soon")]
fn transit(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", early_refresh = 1e999)]
fn progression(day: u32) -> u32 {
    day
}

fn main() {}
