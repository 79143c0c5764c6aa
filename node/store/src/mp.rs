//! Management points: the site's records of them, the site database's
//! access group and client registrations (at a site server), and the
//! installed component (at a management point).

#[allow(unused_imports)]
use crate::prelude::*;
use sms_types::mp::{MpInstall, MpRecord};

impl Store {
    fn mp_key(server: &str) -> Vec<u8> {
        server.to_ascii_lowercase().into_bytes()
    }

    pub fn mp_records(&self) -> Result<Vec<MpRecord>> {
        self.inner()?
            .mp_records
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn mp_record(&self, server: &str) -> Result<Option<MpRecord>> {
        Self::get(&self.inner()?.mp_records, &Self::mp_key(server))
    }

    pub fn put_mp_record(&self, r: &MpRecord) -> Result<()> {
        self.inner()?
            .mp_records
            .insert(Self::mp_key(&r.server), enc(r))?;
        Ok(())
    }

    pub fn remove_mp_record(&self, server: &str) -> Result<()> {
        self.inner()?.mp_records.remove(Self::mp_key(server))?;
        Ok(())
    }

    /// Adds a node to the site database's access group, with the label of
    /// the certificate it must call with ("" on a plaintext hierarchy).
    pub fn grant_mp_access(&self, node_id: &str, cert_label: &str) -> Result<()> {
        self.inner()?
            .mp_access
            .insert(node_id.as_bytes(), cert_label.as_bytes())?;
        Ok(())
    }

    /// The certificate label a node in the access group calls with (None:
    /// not in the group).
    pub fn mp_access_label(&self, node_id: &str) -> Result<Option<String>> {
        Ok(self
            .inner()?
            .mp_access
            .get(node_id.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn revoke_mp_access(&self, node_id: &str) -> Result<()> {
        self.inner()?.mp_access.remove(node_id.as_bytes())?;
        Ok(())
    }

    pub fn has_mp_access(&self, node_id: &str) -> Result<bool> {
        Ok(self.inner()?.mp_access.contains_key(node_id.as_bytes())?)
    }

    /// A client's SMS unique ID, registering it with the next ID of the
    /// site's counter if it is new. Atomic: two registrations of one client
    /// at once get the same ID, and the counter never hands an ID twice.
    /// Flush before answering.
    pub fn register_client(&self, hardware_id: &str, floor: u64) -> Result<(u64, bool)> {
        let clients = self.inner()?.mp_clients.clone();
        if let Some(v) = clients.get(hardware_id.as_bytes())? {
            return Ok((dec(&v)?, false));
        }
        // The counter is taken first (the same atomic update the logon
        // servers' ranges use); if another registration of this client won
        // meanwhile, its ID stands and this one is abandoned, never reused.
        let (id, _) = self.allocate_range(1, floor)?;
        match clients.compare_and_swap(
            hardware_id.as_bytes(),
            None as Option<&[u8]>,
            Some(enc(&id)),
        )? {
            Ok(()) => Ok((id, true)),
            Err(cas) => Ok((
                dec(&cas.current.expect("present when the swap failed"))?,
                false,
            )),
        }
    }

    pub fn registered_clients(&self) -> Result<usize> {
        Ok(self.inner()?.mp_clients.len())
    }

    pub fn mp_install(&self) -> Result<Option<MpInstall>> {
        Self::get(&self.inner()?.meta, META_MP)
    }

    pub fn set_mp_install(&self, m: Option<&MpInstall>) -> Result<()> {
        Self::put_or_remove(&self.inner()?.meta, META_MP, m)
    }
}
