//! Values for the `generate` secrets of an upload.

use super::desired::Desired;
use super::plan;
use super::{Outcome, Pass, PassEvent};
use crate::crd::Phase;
use crate::crd::conditions as c;

/// The `generate` secrets of an upload: kept (inherited) where the Worker already has the
/// secret, whatever is stored locally; otherwise the stored value, or a new one (stored first,
/// then sent). A value is therefore set once and never rotated by a lost store or a CLI run from
/// a fresh checkout.
pub(crate) async fn for_upload(
    d: &Desired,
    script: Option<&plan::ObservedScript>,
    pass: &mut Pass<'_>,
) -> Result<Vec<(String, Option<super::secret::SecretValue>)>, (Phase, Outcome)> {
    let mut out = Vec::new();
    for g in &d.generated {
        if script.is_some_and(|s| s.secret_names.iter().any(|n| n == &g.name)) {
            if g.value.is_none() {
                pass.emit(PassEvent::normal(
                    "SecretKept",
                    "GenerateSecret",
                    format!("generated secret {} has no stored value here; the Worker keeps the value it has", g.name),
                ));
            }
            out.push((g.name.clone(), None));
            continue;
        }
        if let Some(v) = &g.value {
            out.push((g.name.clone(), Some(v.clone())));
            continue;
        }
        match pass.src.generated_secret(pass.svc, &g.name, g.length).await {
            Ok(made) => {
                pass.emit(PassEvent::normal(
                    "SecretGenerated",
                    "GenerateSecret",
                    format!("generated secret {}; it is set on the Worker once and kept", g.name),
                ));
                out.push((g.name.clone(), Some(made.value)));
            }
            Err(e) => {
                pass.report.unknown(c::WORKER_DEPLOYED, c::reason::KUBERNETES_ERROR, e.to_string());
                let e = super::error::PassError::kubernetes("storing a generated secret", e);
                return Err((Phase::Deploying, Outcome::Retry(e)));
            }
        }
    }
    Ok(out)
}
