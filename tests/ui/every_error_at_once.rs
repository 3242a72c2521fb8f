use cached_redis::redis_cached;

// All mistakes are reported in one build, and the function still exists
// (no "cannot find function" error from `main`).
#[redis_cached(domain = "Natal", expire = 60, hash_len = 100, skip(nope))]
fn natal(day: u32) -> u32 {
    day
}

fn main() {
    let _ = natal(1);
}
