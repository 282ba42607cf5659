//! `import wrangler|clodo`: write clodo-operator manifests for an existing project.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::crd::Environment;
use crate::import::{self, Imported};

/// What to import.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A wrangler project (wrangler.json, wrangler.jsonc or wrangler.toml).
    Wrangler(WranglerArgs),
    /// A Clodo framework service directory (clodo-service-manifest.json, config/customers/*/ENV.env).
    Clodo(ClodoArgs),
}

/// Options shared by both importers.
#[derive(Debug, Args, Clone)]
pub struct ImportOutArgs {
    /// Namespace of the generated resources.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Write one file per kind into this directory instead of printing YAML to stdout.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Cloudflare account id (32 hex characters) when the config has none.
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Worker code built by `wrangler deploy --dry-run --outdir DIR` (needed for TypeScript or
    /// code with imports).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
}

/// `import wrangler`.
#[derive(Debug, Args, Clone)]
pub struct WranglerArgs {
    /// wrangler config file, or the project directory.
    pub path: PathBuf,
    /// Import `[env.NAME]` (with wrangler's inheritance) instead of the top level.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Customer resource name [default: the Worker name].
    #[arg(long, value_name = "NAME")]
    pub customer: Option<String>,
    /// Target environment [default: from --env (production, staging, development), else production].
    #[arg(long, value_parser = parse_environment)]
    pub environment: Option<Environment>,
    #[command(flatten)]
    pub out: ImportOutArgs,
}

/// `import clodo`.
#[derive(Debug, Args, Clone)]
pub struct ClodoArgs {
    /// The service directory.
    pub dir: PathBuf,
    /// Customer directory under config/customers [default: the only one].
    #[arg(long, value_name = "NAME")]
    pub customer: Option<String>,
    /// Environment whose `<env>.env` is imported.
    #[arg(long = "env", value_parser = parse_environment, default_value = "production")]
    pub environment: Environment,
    #[command(flatten)]
    pub out: ImportOutArgs,
}

fn parse_environment(s: &str) -> Result<Environment, String> {
    match s {
        "development" => Ok(Environment::Development),
        "staging" => Ok(Environment::Staging),
        "production" => Ok(Environment::Production),
        _ => Err(format!("{s:?}: expected development, staging or production")),
    }
}

/// Run an import; returns the exit code.
pub fn run(cmd: ImportCommand) -> anyhow::Result<i32> {
    let (result, out) = match cmd {
        ImportCommand::Wrangler(a) => (
            import::wrangler::import(&import::wrangler::Options {
                path: a.path,
                env: a.env,
                customer: a.customer,
                namespace: a.out.namespace.clone(),
                account_id: a.out.account_id.clone(),
                bundle: a.out.bundle.clone(),
                environment: a.environment,
            }),
            a.out,
        ),
        ImportCommand::Clodo(a) => (
            import::clodo::import(&import::clodo::Options {
                dir: a.dir,
                customer: a.customer,
                environment: Some(a.environment),
                namespace: a.out.namespace.clone(),
                account_id: a.out.account_id.clone(),
                bundle: a.out.bundle.clone(),
            }),
            a.out,
        ),
    };
    let imported = match result {
        Ok(i) => i,
        Err(e) => {
            eprintln!("✗ import failed: {e}");
            return Ok(1);
        }
    };
    report(&imported);
    match &out.out_dir {
        Some(dir) => {
            for p in imported.write_dir(dir)? {
                eprintln!("wrote {}", p.display());
            }
            eprintln!(
                "next: fill in the Secret stubs (annotation {}), then `clodo-operator validate -f {}`",
                import::STUB_ANNOTATION,
                dir.display()
            );
        }
        None => print!("{}", imported.to_yaml()?),
    }
    Ok(0)
}

/// Everything not imported, and the importer's decisions, on stderr.
fn report(imp: &Imported) {
    for n in &imp.notes {
        eprintln!("note: {n}");
    }
    for u in &imp.unmapped {
        eprintln!("unmapped: {}: {}", u.key, u.why);
    }
    if !imp.unmapped.is_empty() {
        eprintln!("{} setting(s) not imported: the CloudflareService CRD cannot express them yet", imp.unmapped.len());
    }
}
