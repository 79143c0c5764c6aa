//! The site control history (CT0 by serial) and the bad box of refused CT1s.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    /// The current site control image (highest serial).
    pub fn ct0(&self) -> Result<Option<SiteControl>> {
        match self.inner()?.ct0.last()? {
            Some((_, v)) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    pub fn ct0_at(&self, serial: u64) -> Result<Option<SiteControl>> {
        Self::get(&self.inner()?.ct0, &serial.to_be_bytes())
    }

    /// Serials kept in the CT0 history, oldest first.
    pub fn ct0_serials(&self) -> Result<Vec<u64>> {
        self.inner()?
            .ct0
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&k);
                Ok(u64::from_be_bytes(b))
            })
            .collect()
    }

    /// Applies a CT1 taken from the inbox: the new CT0 and the inbox removal
    /// happen together, and only if `new_ct0.serial` is exactly one past the
    /// current serial. The Site Configuration Manager is the only writer of
    /// CT0, so the check cannot race.
    pub fn apply_ct1(&self, inbox_key: u64, new_ct0: &SiteControl) -> Result<()> {
        let current = self.ct0()?.map(|c| c.serial).unwrap_or(0);
        if new_ct0.serial != current + 1 {
            return Err(StoreError::SerialGap {
                current,
                proposed: new_ct0.serial,
            });
        }
        (&self.inner()?.ct0, &self.inner()?.sitectrl_inbox)
            .transaction(|(ct0t, inbox)| {
                ct0t.insert(&new_ct0.serial.to_be_bytes(), enc(new_ct0))?;
                inbox.remove(&inbox_key.to_be_bytes())?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Moves a CT1 from the inbox to the bad box with its reason.
    pub fn reject_ct1(&self, inbox_key: u64, bad: &BadCt1) -> Result<()> {
        (&self.inner()?.sitectrl_inbox, &self.inner()?.bad)
            .transaction(|(inbox, badt)| {
                inbox.remove(&inbox_key.to_be_bytes())?;
                badt.insert(&inbox_key.to_be_bytes(), enc(bad))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    pub fn bad_ct1s(&self) -> Result<Vec<BadCt1>> {
        self.inner()?
            .bad
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }
}
