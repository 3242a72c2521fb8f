use cached_redis::redis_cached;

macro_rules! name {
    () => {
        _day
    };
}

#[redis_cached(domain = "natal")]
fn natal(name!(): u32) -> u32 {
    7
}

fn main() {}
