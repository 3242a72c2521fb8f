use cached_redis::redis_cached;

#[redis_cached(domain = natal)]
fn a(day: u32) -> u32 {
    day
}

#[redis_cached(domain = 5)]
fn b(day: u32) -> u32 {
    day
}

#[redis_cached(domain)]
fn c(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", cache_none = "yes")]
fn d(day: u32) -> Option<u32> {
    Some(day)
}

#[redis_cached(domain = "natal", skip = day)]
fn e(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", key(day))]
fn f(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", crate = 1 + 1)]
fn g(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", crate)]
fn h(day: u32) -> u32 {
    day
}

fn main() {}

#[redis_cached(domain = "natal", ttl)]
fn i(day: u32) -> u32 {
    day
}

#[redis_cached(domain = "natal", hash_len)]
fn j(day: u32) -> u32 {
    day
}
