//! Every re-export of the facade resolves to the item of its sub-crate.

#[test]
fn process_items() {
    let _: fn() = mp::init;
    let _: fn() -> usize = mp::cpu_count;
    assert_eq!(
        mp::get_context(mp::StartMethod::Spawn).start_method(),
        mp::process::StartMethod::Spawn
    );
    assert_eq!(mp::current_process().name(), "MainProcess");
    assert!(mp::parent_process().is_none());
    let _ = mp::active_children();
    let _ = mp::get_all_start_methods();
}

#[test]
fn sub_crates() {
    // The modules exist under their facade names.
    use mp::{ipc as _, manager as _, pool as _, process as _, shm as _};
}
