use cached_redis::redis_cached;

#[redis_cached(domain = "natal")]
struct Chart {
    sun: f64,
}

fn main() {}
