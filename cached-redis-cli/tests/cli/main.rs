//! Every subcommand, run as the built binary against throw-away Redis
//! servers, with entries written by the real runtime. Each test has its
//! own server (or cluster), so they run in parallel.

mod support;

mod doctor;
mod errors;
mod flush;
mod inspect;
mod ls;
mod stats;
