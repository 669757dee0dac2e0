//! Compiles every example projection, and every hostile fixture of the sandbox tests, to a
//! `wasm32-wasip2` component and writes their paths to `$OUT_DIR/artifacts.rs`, which
//! `src/lib.rs` includes.
//!
//! The hostile fixtures are one crate, `tests/fixtures/hostile`, with one behaviour per
//! feature: it is built once per feature and each component copied to `hostile/hostile_<feature>.wasm`
//! (the name of the projection it describes, so that a sidecar `hostile_<feature>.toml` applies).
//!
//! The guests are built by a cargo of their own, with a target directory of their own
//! (`<target>/refract-guests`) so that it does not wait for the lock of the build that
//! runs this script, in release mode, and without the host's `RUSTFLAGS`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// `(constant, package)` for each example projection.
const PROJECTIONS: &[(&str, &str)] = &[("ORDER_SUMMARY", "order_summary"), ("REVENUE_BY_DAY", "revenue_by_day")];

/// `(constant, package)` for each projection of `refract bench` (not among the examples of `all()`).
const BENCH_PROJECTIONS: &[(&str, &str)] = &[("NOOP", "noop"), ("UPSERT_PER_EVENT", "upsert_per_event")];

/// `(constant, package, doc comment)` for each variant of order_summary, fixtures of the tests.
const SUMMARY_VARIANTS: &[(&str, &str, &str)] = &[
    (
        "ORDER_SUMMARY_V2",
        "order_summary_v2",
        "Version 2 of `order_summary` (one more column), for the hot-reload tests.",
    ),
    (
        "ORDER_SUMMARY_TINY_CACHE",
        "order_summary_tiny_cache",
        "`order_summary` with no rows cached between batches, for the pipeline tests.",
    ),
];

/// The package of the hostile fixtures.
const HOSTILE_PACKAGE: &str = "hostile";

/// The features of the hostile package, one misbehaving projection each.
const HOSTILE: &[&str] = &[
    "loop",
    "memory",
    "trap1000",
    "bad_value",
    "unknown_table",
    "no_key",
    "escape_drop",
    "escape_ddl",
    "escape_insert",
    "escape_set_role",
    "escape_reset_role",
    "wasi_io",
    "entropy",
    "flood",
    "ignore_read_errors",
    "unknown_import",
    "contract_0_9",
    "malformed_packed",
    "flood_packed",
];

/// What the guests are built from: a change to any of these rebuilds them.
const SOURCES: &[&str] = &[
    "guest-sdk",
    "wit",
    "projections/order_domain",
    "projections/order_summary",
    "projections/revenue_by_day",
    "projections/noop",
    "projections/upsert_per_event",
    "tests/fixtures/hostile",
    "tests/fixtures/summary_v2",
    "tests/fixtures/tiny_cache",
    "Cargo.lock",
];

fn main() {
    let root = Path::new(&env_var("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let target_dir = out_dir.ancestors().nth(4).unwrap_or(&out_dir).join("refract-guests");

    ensure_target_installed();
    let packages: Vec<&str> = PROJECTIONS.iter().chain(BENCH_PROJECTIONS).map(|(_, package)| *package).collect();
    build_guests(&root, &target_dir, &packages, None);
    let built = target_dir.join(TARGET).join("release");

    // Later builds in this script may overwrite what cargo put in `built` (a guest that
    // depends on an example rebuilds it with other features): the components are copied
    // out of it as soon as they are built.
    let components = target_dir.join("components");
    fs::create_dir_all(&components).unwrap_or_else(|e| panic!("cannot create {}: {e}", components.display()));
    let keep = |package: &str| {
        let (from, to) = (built.join(format!("{package}.wasm")), components.join(format!("{package}.wasm")));
        fs::copy(&from, &to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
        check_component(&to);
        to
    };

    let mut generated = String::new();
    let mut all = String::new();
    for (constant, package) in PROJECTIONS.iter().chain(BENCH_PROJECTIONS) {
        let wasm = keep(package);
        let path = wasm.display().to_string();
        writeln!(generated, "/// The `{package}` projection, built as a component: an absolute path.").unwrap();
        writeln!(generated, "pub const {constant}: &str = {path:?};").unwrap();
        if PROJECTIONS.contains(&(*constant, *package)) {
            write!(all, "({package:?}, {constant}), ").unwrap();
        }
    }
    writeln!(generated, "/// Every example projection: `(package name, path of its component)`.").unwrap();
    writeln!(generated, "pub fn all() -> &'static [(&'static str, &'static str)] {{\n    &[{all}]\n}}").unwrap();

    // The variants of order_summary are built without it: built with order_summary, that
    // crate's `component` feature would be on and both would export.
    let variants: Vec<&str> = SUMMARY_VARIANTS.iter().map(|(_, package, _)| *package).collect();
    build_guests(&root, &target_dir, &variants, None);
    for (constant, package, doc) in SUMMARY_VARIANTS {
        let wasm = keep(package);
        writeln!(generated, "/// {doc}").unwrap();
        writeln!(generated, "pub const {constant}: &str = {:?};", wasm.display().to_string()).unwrap();
    }

    // Each feature's build overwrites `hostile.wasm`: copy it away before the next one.
    let hostile_dir = target_dir.join("hostile");
    fs::create_dir_all(&hostile_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", hostile_dir.display()));
    for feature in HOSTILE {
        build_guests(&root, &target_dir, &[HOSTILE_PACKAGE], Some(feature));
        let wasm = hostile_dir.join(format!("{HOSTILE_PACKAGE}_{feature}.wasm"));
        let from = built.join(format!("{HOSTILE_PACKAGE}.wasm"));
        fs::copy(&from, &wasm).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), wasm.display()));
        check_component(&wasm);
        let constant = format!("HOSTILE_{}", feature.to_ascii_uppercase());
        let path = wasm.display().to_string();
        writeln!(
            generated,
            "/// The hostile fixture `{HOSTILE_PACKAGE}_{feature}`, built as a component: an absolute path."
        )
        .unwrap();
        writeln!(generated, "pub const {constant}: &str = {path:?};").unwrap();
    }
    fs::write(out_dir.join("artifacts.rs"), generated).expect("cannot write artifacts.rs to OUT_DIR");
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name} for the build script"))
}

/// Adds the `wasm32-wasip2` standard library when the toolchain lacks it: these machines set
/// `RUSTUP_AUTO_INSTALL=0`, so `rust-toolchain.toml`'s `targets` are not installed on use.
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot =
        Command::new(&rustc).args(["--print", "sysroot"]).output().ok().filter(|output| output.status.success());
    let Some(sysroot) = sysroot else {
        panic!("cannot run `{rustc} --print sysroot` to check for the {TARGET} target");
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing: running `rustup target add {TARGET}`");
    let added = Command::new("rustup").args(["target", "add", TARGET]).stdout(Stdio::from(std::io::stderr())).status();
    if !matches!(added, Ok(status) if status.success()) {
        panic!(
            "the Rust standard library for {TARGET} is not installed and `rustup target add {TARGET}` failed \
             ({added:?}); run `rustup target add {TARGET}` and build again"
        );
    }
}

/// Builds `packages` for [`TARGET`], with `feature` when one is given.
fn build_guests(root: &Path, target_dir: &Path, packages: &[&str], feature: Option<&str>) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        command.args(["--package", package]);
    }
    if let Some(feature) = feature {
        command.args(["--features", feature]);
    }
    command
        // Flags meant for the host build (and clippy, when it runs this script) are not
        // for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // Line tables make a component ten times larger and are no use inside the engine.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        // Cargo reads a build script's stdout for directives: keep the inner build's off it.
        .stdout(Stdio::from(std::io::stderr()));
    let status = command.status().unwrap_or_else(|error| panic!("cannot run {cargo}: {error}"));
    assert!(
        status.success(),
        "building {packages:?} ({feature:?}) for {TARGET} failed ({status}); see the errors above"
    );
}

/// Fails the build unless `wasm` is a WebAssembly component (not a core module).
fn check_component(wasm: &Path) {
    // `\0asm`, then version 0x0d and layer 1: a component. A core module has version 1, layer 0.
    const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let bytes = fs::read(wasm).unwrap_or_else(|error| panic!("cannot read {}: {error}", wasm.display()));
    assert!(bytes.starts_with(&COMPONENT_HEADER), "{} is not a WebAssembly component", wasm.display());
}
