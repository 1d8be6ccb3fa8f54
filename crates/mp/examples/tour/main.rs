//! The tour: the article's programs, in Rust, with the results it states.
//!
//! Run it with `cargo run --release --example tour`. Each part prints what
//! the article's Python program prints, the result the article states
//! beside it (lines starting `article:`), and one line on what it teaches.
//! Each part is a module of its own, numbered and run as the article's
//! sections are: the introduction, 1, 2, 3-1, 3-2 and 3-3.

mod part1;
mod part2;
mod part2_pool;
mod part3_1;
mod part3_1_manager;
mod part3_2;
mod part3_3;

// Every part returns mp::Error: each crate's error converts into it with `?`.
fn main() -> Result<(), mp::Error> {
    mp::init();

    part1::run()?;
    part2::run()?;
    part2_pool::run()?;
    part3_1::run()?;
    part3_1_manager::run()?;
    part3_2::run()?;
    part3_3::run()?;
    Ok(())
}
