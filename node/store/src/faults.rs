//! Severed links and injected faults.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    pub fn link_fault(&self, to: &SiteCode) -> Result<Option<LinkFault>> {
        Self::get(&self.inner()?.links, to.as_bytes())
    }

    pub fn set_link_fault(&self, to: &SiteCode, fault: Option<&LinkFault>) -> Result<()> {
        Self::put_or_remove(&self.inner()?.links, to.as_bytes(), fault)
    }

    pub fn faults(&self) -> Result<Vec<Fault>> {
        self.inner()?
            .faults
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn set_fault(&self, fault: &Fault) -> Result<()> {
        self.inner()?.faults.insert(fault.name(), enc(fault))?;
        Ok(())
    }

    pub fn clear_fault(&self, name: &str) -> Result<bool> {
        Ok(self.inner()?.faults.remove(name)?.is_some())
    }
}
