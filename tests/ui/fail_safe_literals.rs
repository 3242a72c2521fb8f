use cached_redis::redis_cached;

#[redis_cached(domain = "natal", stale_if_error = "0s")]
fn natal(day: u32) -> Result<u32, String> {
    Ok(day)
}

#[redis_cached(domain = "natal", stale_if_error = "1h", timeout = "soon")]
fn transit(day: u32) -> Result<u32, String> {
    Ok(day)
}

#[redis_cached(domain = "natal", timeout = true)]
fn progression(day: u32) -> Result<u32, String> {
    Ok(day)
}

fn main() {}
