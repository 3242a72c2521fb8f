use cached_redis::redis_cached;

#[redis_cached(domain = "natal")]
fn natal(day: u32) -> impl Iterator<Item = u32> {
    std::iter::once(day)
}

fn main() {}
