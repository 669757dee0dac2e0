//! `refract new`: scaffolds a projection crate that builds to a loadable component.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Arguments of `refract new`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the new projection: lowercase letters, digits and `_`, starting with a letter.
    /// It names the crate, the projection and its schema.
    name: String,
    /// Directory of the new crate (default: `./NAME`). It must not exist or be empty.
    #[arg(long)]
    path: Option<PathBuf>,
}

/// The files of a new projection crate: path inside the crate, template.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../templates/new/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../../templates/new/lib.rs.tmpl")),
    ("tests/projection.rs", include_str!("../../templates/new/projection.rs.tmpl")),
    ("README.md", include_str!("../../templates/new/README.md.tmpl")),
    (".gitignore", include_str!("../../templates/new/gitignore.tmpl")),
];

/// PostgreSQL truncates identifiers longer than this, and the name is a schema's name.
const MAX_NAME_LEN: usize = 63;

/// Names that are valid by their characters but not as a crate or schema name.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "alloc",
    "core",
    "std",
    "test",
    "proc_macro",
    "public",
    "information_schema",
];

/// Runs `refract new`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = sdk_path()?;
    scaffold(&args.name, &dir, &sdk)?;
    println!("Created projection `{}` in {}", args.name, dir.display());
    println!(
        "refract-sdk is a path dependency on {} (the checkout this refract binary was built from).",
        sdk.display()
    );
    println!();
    println!("Next:");
    println!("  cd {}", dir.display());
    println!("  cargo test                                    # native tests: no wasm, no database");
    println!("  rustup target add wasm32-wasip2               # once per toolchain");
    println!("  cargo build --target wasm32-wasip2 --release  # target/wasm32-wasip2/release/{}.wasm", args.name);
    Ok(())
}

/// Checks that `name` can name a crate, a Rust module, a projection and a PostgreSQL schema.
fn validate_name(name: &str) -> anyhow::Result<()> {
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        bail!("invalid projection name `{name}`: use lowercase letters, digits and `_`, starting with a letter");
    }
    if name.len() > MAX_NAME_LEN {
        bail!("invalid projection name `{name}`: longer than {MAX_NAME_LEN} characters");
    }
    if RESERVED.contains(&name) || name.starts_with("pg_") {
        bail!("invalid projection name `{name}`: reserved in Rust or PostgreSQL");
    }
    Ok(())
}

/// The SDK of the checkout this binary was built from.
fn sdk_path() -> anyhow::Result<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    sdk.canonicalize().with_context(|| {
        format!(
            "the refract-sdk crate is not at {} any more (this binary was built from that checkout); \
             rebuild refract from a Refract checkout",
            sdk.display()
        )
    })
}

/// Writes the crate's files into `dir`, which must not exist or be empty.
fn scaffold(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    let occupied = dir.exists() && fs::read_dir(dir).map(|mut entries| entries.next().is_some()).unwrap_or(true);
    if occupied {
        bail!("{} already exists and is not an empty directory", dir.display());
    }
    // TOML basic strings take `\` as an escape; forward slashes work on every platform.
    let sdk = sdk.display().to_string().replace('\\', "/");
    let type_name = type_name(name);
    for (file, template) in FILES {
        let text = template.replace("{{name}}", name).replace("{{Type}}", &type_name).replace("{{sdk_path}}", &sdk);
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `OrderTotals` for `order_totals`: the projection's Rust type.
fn type_name(name: &str) -> String {
    name.split('_')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase()).into_iter().chain(chars)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_fit_a_crate_and_a_schema() {
        for good in ["order_totals", "top10", "a", "a__b"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in
            ["", "Order", "order-totals", "1st", "_x", "ünï", "self", "test", "public", "pg_stats", &"x".repeat(64)]
        {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("order_totals"), "OrderTotals");
        assert_eq!(type_name("top10_items"), "Top10Items");
        assert_eq!(type_name("a__b"), "AB");
    }
}
