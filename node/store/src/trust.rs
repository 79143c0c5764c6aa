//! Trust material: this node's key and certificate chain, a primary's
//! certificate authority, the join tokens it issued and the certificates
//! it revoked. Kept in sled so they are as durable as the site they
//! belong to, and go with it when the site is removed.

#[allow(unused_imports)]
use crate::prelude::*;

const NODE: &[u8] = b"node";
const CA: &[u8] = b"ca";
const ISSUER: &[u8] = b"issuer";

impl Store {
    /// This node's own key and chain.
    pub fn node_credentials(&self) -> Result<Option<StoredCredentials>> {
        Self::get(&self.inner()?.trust, NODE)
    }

    pub fn set_node_credentials(&self, c: &StoredCredentials) -> Result<()> {
        self.inner()?.trust.insert(NODE, enc(c))?;
        Ok(())
    }

    /// A primary's certificate authority.
    pub fn ca_credentials(&self) -> Result<Option<StoredCredentials>> {
        Self::get(&self.inner()?.trust, CA)
    }

    pub fn set_ca_credentials(&self, c: &StoredCredentials) -> Result<()> {
        self.inner()?.trust.insert(CA, enc(c))?;
        Ok(())
    }

    /// Where this node's certificate came from (the join token's issuer):
    /// a member server renews there.
    pub fn issuer_address(&self) -> Result<Option<String>> {
        Self::get(&self.inner()?.trust, ISSUER)
    }

    pub fn set_issuer_address(&self, addr: &str) -> Result<()> {
        self.inner()?.trust.insert(ISSUER, enc(&addr.to_string()))?;
        Ok(())
    }

    pub fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        self.inner()?.tokens.insert(t.id, enc(t))?;
        Ok(())
    }

    /// Every token this node issued, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut out: Vec<TokenRecord> = self
            .inner()?
            .tokens
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect::<Result<_>>()?;
        out.sort_by_key(|t| t.created_unix);
        Ok(out)
    }

    /// Redeems token `id` in one transaction: `check` sees the record and
    /// decides (unused, unexpired, proof valid); `issue` then makes the
    /// certificate and returns its serial and whatever the caller needs.
    /// The token is marked used in the same step, so it works only once even
    /// when two requests race.
    pub fn redeem_token<T>(
        &self,
        id: &[u8; 16],
        now_unix: i64,
        check: impl Fn(&TokenRecord) -> std::result::Result<(), TokenRefusal>,
        issue: impl Fn(&TokenRecord) -> std::result::Result<(String, T), TokenRefusal>,
    ) -> Result<std::result::Result<T, TokenRefusal>> {
        let r = self.inner()?.tokens.transaction(|t| {
            let Some(v) = t.get(id)? else {
                return Ok(Err(TokenRefusal::Unknown));
            };
            let mut rec: TokenRecord = dec(&v).map_err(ConflictableTransactionError::Abort)?;
            if let Err(refusal) = check(&rec) {
                return Ok(Err(refusal));
            }
            match issue(&rec) {
                Ok((serial, out)) => {
                    rec.used = Some((now_unix, serial));
                    t.insert(id, enc(&rec))?;
                    Ok(Ok(out))
                }
                Err(refusal) => Ok(Err(refusal)),
            }
        });
        r.map_err(txn_err)
    }

    /// Records a revoked certificate serial.
    pub fn revoke(&self, serial: &str, why: &str) -> Result<()> {
        self.inner()?
            .revoked
            .insert(serial.as_bytes(), enc(&why.to_string()))?;
        Ok(())
    }

    /// Records a certificate this node issued to `label` by renewal (a
    /// join token records the first one itself).
    pub fn record_issued(&self, label: &str, serial: &str, at_unix: i64) -> Result<()> {
        self.inner()?
            .issued
            .insert(issued_key(label, serial), enc(&at_unix))?;
        Ok(())
    }

    /// Serials of every certificate this node issued to `label`: by its
    /// join tokens and by renewals.
    pub fn issued_serials(&self, label: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .tokens()?
            .into_iter()
            .filter(|t| t.label == label)
            .filter_map(|t| t.used.map(|(_, serial)| serial))
            .filter(|s| !s.is_empty())
            .collect();
        let prefix = issued_key(label, "");
        for k in self.inner()?.issued.scan_prefix(&prefix).keys() {
            let k = k?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Every revoked serial with its reason.
    pub fn revocations(&self) -> Result<Vec<(String, String)>> {
        self.inner()?
            .revoked
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), dec::<String>(&v)?))
            })
            .collect()
    }

    pub fn is_revoked(&self, serial: &str) -> Result<bool> {
        Ok(self.inner()?.revoked.contains_key(serial.as_bytes())?)
    }
}

fn issued_key(label: &str, serial: &str) -> Vec<u8> {
    [label.as_bytes(), &[0], serial.as_bytes()].concat()
}
