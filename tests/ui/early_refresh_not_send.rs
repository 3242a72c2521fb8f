use std::rc::Rc;

use cached_redis::redis_cached;

// Takes its arguments by value, so with `early_refresh` its body runs on a
// task of its own when it refreshes: it must be `Send`.
#[redis_cached(domain = "natal", early_refresh = true)]
async fn natal(day: u32) -> u32 {
    let shared = Rc::new(day);
    std::future::ready(()).await;
    *shared
}

fn main() {}
