//! Identity, node id, member domain and the bootstrap package: the `meta` tree.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    /// This node's permanent id, created on first use.
    pub fn node_id(&self) -> Result<Uuid> {
        if let Some(id) = Self::get(&self.inner()?.meta, META_NODE_ID)? {
            return Ok(id);
        }
        let id = Uuid::now_v7();
        self.inner()?.meta.insert(META_NODE_ID, enc(&id))?;
        Ok(id)
    }

    pub fn identity(&self) -> Result<Option<Identity>> {
        Self::get(&self.inner()?.meta, META_IDENTITY)
    }

    pub fn set_identity(&self, id: &Identity) -> Result<()> {
        self.inner()?.meta.insert(META_IDENTITY, enc(id))?;
        Ok(())
    }

    /// Installs the central primary: identity and CT0 serial 1 in one step.
    pub fn install_site(&self, id: &Identity, ct0: &SiteControl) -> Result<()> {
        (&self.inner()?.meta, &self.inner()?.ct0)
            .transaction(|(meta, ct0t)| {
                if meta.get(META_IDENTITY)?.is_some() {
                    return abort(StoreError::AlreadyInstalled);
                }
                meta.insert(META_IDENTITY, enc(id))?;
                ct0t.insert(&ct0.serial.to_be_bytes(), enc(ct0))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    pub fn member_domain(&self) -> Result<Option<String>> {
        Self::get(&self.inner()?.meta, META_DOMAIN)
    }

    pub fn set_member_domain(&self, domain: &str) -> Result<()> {
        self.inner()?
            .meta
            .insert(META_DOMAIN, enc(&domain.to_string()))?;
        Ok(())
    }

    // ---- bootstrap ------------------------------------------------------

    pub fn bootstrap_package(&self) -> Result<Option<ReceivedBootstrap>> {
        Self::get(&self.inner()?.meta, META_BOOTSTRAP)
    }

    /// Records a received package in one transaction with the checks that
    /// decide whether it may be taken. `decide` is the Bootstrap component's
    /// rule: it sees whether a site is installed, the package already held
    /// and its state, and answers whether to record this one. Returns false
    /// when this very job was already recorded (a resend): nothing changes.
    pub fn accept_bootstrap(
        &self,
        pkg: &ReceivedBootstrap,
        decide: impl Fn(&BootstrapSlot) -> std::result::Result<(), BootstrapRefusal>,
    ) -> Result<bool> {
        self.inner()?
            .meta
            .transaction(|meta| {
                let existing: Option<ReceivedBootstrap> = match meta.get(META_BOOTSTRAP)? {
                    Some(v) => Some(dec(&v).map_err(ConflictableTransactionError::Abort)?),
                    None => None,
                };
                if existing.as_ref().is_some_and(|e| e.job_id == pkg.job_id) {
                    return Ok(false);
                }
                let state: Option<BootstrapState> = match meta.get(META_BOOTSTRAP_STATE)? {
                    Some(v) => Some(dec(&v).map_err(ConflictableTransactionError::Abort)?),
                    None => None,
                };
                let slot = BootstrapSlot {
                    installed: meta.get(META_IDENTITY)?.is_some(),
                    existing,
                    state,
                };
                if let Err(r) = decide(&slot) {
                    return abort(StoreError::BootstrapRefused(r));
                }
                meta.insert(META_BOOTSTRAP, enc(pkg))?;
                meta.insert(
                    META_BOOTSTRAP_STATE,
                    enc(&BootstrapState::Running { completed_phase: 0 }),
                )?;
                Ok(true)
            })
            .map_err(txn_err)
    }

    pub fn bootstrap_state(&self) -> Result<Option<BootstrapState>> {
        Self::get(&self.inner()?.meta, META_BOOTSTRAP_STATE)
    }

    pub fn set_bootstrap_state(&self, s: &BootstrapState) -> Result<()> {
        self.inner()?.meta.insert(META_BOOTSTRAP_STATE, enc(s))?;
        Ok(())
    }
}
