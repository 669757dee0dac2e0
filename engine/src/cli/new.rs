//! `refract new`.

/// Arguments of `refract new`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the new projection (lowercase letters, digits and `_`).
    name: String,
}

/// Runs `refract new`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("refract new is not built yet ({})", args.name)
}
