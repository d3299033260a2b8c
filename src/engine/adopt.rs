//! Checks this instance takes on from another in a cluster (see
//! `crate::cluster`): their open incidents are read again, so the recovery
//! resolves the incident another instance opened and no second "opened"
//! goes out; the last owner's view is shown until the first run here.

use chrono::Utc;

use super::Engine;
use crate::incident::OpenIncident;
use crate::state::{CheckState, Seen};
use crate::store::StoreError;

impl Engine {
    /// Takes on checks `taken` (by index), each with what its last owner saw
    /// of it. Fails, changing nothing, when the open incidents cannot be read.
    pub(super) async fn adopt(
        &mut self,
        taken: Vec<(usize, Option<Seen>)>,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let open = self.guarded(store.open_incidents()).await?;
        let now = Utc::now();
        for (i, seen) in taken {
            let Some(rt) = self.checks.get_mut(i) else {
                continue;
            };
            let incident = open.iter().find(|inc| inc.check == *rt.config.name);
            rt.open = incident.map(|inc| {
                // Reminders keep their pace when it comes back to the same instance.
                let notified = (rt.open.as_ref())
                    .filter(|o| o.id == inc.id)
                    .map_or(now, |o| o.last_notified_at);
                OpenIncident::new(inc, notified)
            });
            rt.state = match incident {
                Some(inc) => CheckState::restored(
                    inc.color,
                    inc.severity,
                    inc.message.clone(),
                    inc.started_at,
                ),
                None => CheckState::default(),
            };
            // The last owner's counts: one failure there and one here make two.
            if let Some(seen) = &seen {
                rt.state.carry_on(seen.streaks);
            }
            self.metrics.set_status(i, rt.state.color);
            if let Some(seen) = seen {
                self.board.show(i, seen);
            }
        }
        self.publish_open_counts();
        Ok(())
    }
}
