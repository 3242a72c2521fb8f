use cached_redis::redis_cached;

fn is_empty(value: &u32) -> bool {
    *value == 0
}

// `unless` takes the stored value (here a `String`), not another type.
#[redis_cached(domain = "natal", unless = is_empty)]
fn natal(day: u32) -> String {
    day.to_string()
}

#[redis_cached(domain = "natal", jitter = "150%")]
fn transit(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", jitter = 10)]
fn progression(day: u32) -> u32 {
    day
}

fn main() {}
