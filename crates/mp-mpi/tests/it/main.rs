//! mp-mpi's integration tests. They need several ranks, so this binary
//! has no libtest harness: run plainly (`cargo test -p mp-mpi --features
//! mpi`), it starts itself under `mpirun` (each run inside `timeout`),
//! once per scenario and transport, and checks how each job ends; under
//! `mpirun`, every rank runs the scenario named by the first argument.

mod failures;
mod launch;
mod suite;

fn main() {
    let scenario = std::env::args().nth(1);
    let under_mpirun = std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
        || std::env::var_os("PMI_SIZE").is_some();
    match (scenario.as_deref(), under_mpirun) {
        (Some("suite"), true) => suite::run(),
        (Some(name), true) => failures::run(name),
        (_, false) => launch::run_all(),
        (None, true) => {
            eprintln!("mp-mpi it: under mpirun, name a scenario");
            std::process::exit(2);
        }
    }
}
