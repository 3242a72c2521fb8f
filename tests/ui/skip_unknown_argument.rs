use cached_redis::redis_cached;

#[redis_cached(domain = "natal", skip(database))]
fn natal(day: u32, db: &str) -> u32 {
    let _ = db;
    day
}

#[redis_cached(domain = "natal", segments(size))]
fn transit(day: u32) -> u32 {
    day
}

fn main() {}
