//! The site's side of trust: creating the hierarchy's root at the central
//! install, keeping this node's certificate, issuing join tokens and
//! redeeming them, and issuing administrator certificates. The crypto is in
//! `sms-trust`; the material is in the store; the handshakes are in the
//! server.

use sms_store::{Store, StoredCredentials, TokenRecord, TokenRefusal};
use sms_trust::names::check_label;
use sms_trust::{token, AdminRole, Authority, Credentials, JoinToken, Name, Role};
use sms_types::catalog;
use sms_types::{Ct1, Ct2, SignedBody, SiteCode};

use crate::core::Ctx;
use crate::error::Refused;

/// Shortest and longest life of a join token.
pub const MIN_TOKEN_SECS: u64 = 60;
pub const MAX_TOKEN_SECS: u64 = 7 * 24 * 3600;
pub const DEFAULT_TOKEN_SECS: u64 = 3600;

/// Seconds since the Unix epoch (certificate times are in seconds).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn to_stored(c: &Credentials) -> StoredCredentials {
    StoredCredentials {
        key_pkcs8: c.key_pkcs8.clone(),
        chain: c.chain.clone(),
    }
}

fn from_stored(c: StoredCredentials) -> Credentials {
    Credentials {
        key_pkcs8: c.key_pkcs8,
        chain: c.chain,
    }
}

fn internal(e: impl std::fmt::Display) -> Refused {
    Refused::Internal(e.to_string())
}

/// This node's own key and chain, if it has one.
pub fn node_credentials(store: &Store) -> Result<Option<Credentials>, Refused> {
    Ok(store.node_credentials()?.map(from_stored))
}

/// Stores this node's own key and chain (the caller makes it durable).
pub fn set_node_credentials(store: &Store, c: &Credentials) -> Result<(), Refused> {
    c.identity().map_err(internal)?;
    store.set_node_credentials(&to_stored(c))?;
    Ok(())
}

/// The central site's install: a new root authority (or `existing`, an
/// operator's own CA) and this site server's certificate under it.
pub fn install_root(
    store: &Store,
    code: &SiteCode,
    existing: Option<Credentials>,
    lifetime: Option<std::time::Duration>,
) -> Result<Credentials, Refused> {
    let ca = match existing {
        Some(c) => {
            let a = Authority::load(&c).map_err(|e| Refused::Invalid(e.to_string()))?;
            if c.chain.len() != 1 {
                return Err(Refused::Invalid(
                    "the CA certificate must be a self-signed root (one certificate)".into(),
                ));
            }
            a
        }
        None => Authority::new_root(code).map_err(internal)?,
    };
    install_authority(store, &ca, code, &[], lifetime)
}

/// A primary's own certificate, issued by its own authority, both stored.
pub fn install_authority(
    store: &Store,
    ca: &Authority,
    code: &SiteCode,
    ancestors: &[SiteCode],
    lifetime: Option<std::time::Duration>,
) -> Result<Credentials, Refused> {
    let own = ca
        .issue_own_lasting(Role::Primary, &Name::site(code, ancestors), lifetime)
        .map_err(internal)?;
    store.set_ca_credentials(&to_stored(&ca.credentials()))?;
    store.set_node_credentials(&to_stored(&own))?;
    Ok(own)
}

fn authority(store: &Store) -> Result<Authority, Refused> {
    let c = store.ca_credentials()?.ok_or_else(|| {
        Refused::Precondition(
            "this node holds no certificate authority: only a primary site issues tokens and \
             certificates; ask its parent primary"
                .into(),
        )
    })?;
    Authority::load(&from_stored(c)).map_err(internal)
}

/// Makes a join token for one site code (role `secondary` or `primary`) or
/// one member server name (role `member`), valid `ttl_secs`.
pub fn create_token(
    ctx: &Ctx,
    label: &str,
    role: Role,
    ttl_secs: u64,
) -> Result<JoinToken, Refused> {
    let ca = authority(&ctx.store)?;
    match role {
        Role::Primary | Role::Secondary => {
            let code: SiteCode = label
                .parse()
                .map_err(|e| Refused::Invalid(format!("{e}")))?;
            if ctx.identity().is_some_and(|id| id.site_code == code) {
                return Err(Refused::Invalid(format!(
                    "{code} is this site; a token is for a new site below it"
                )));
            }
        }
        Role::Member => check_label(label).map_err(|e| Refused::Invalid(e.to_string()))?,
        other => {
            return Err(Refused::Invalid(format!(
                "a join token is for a primary, a secondary or a member server, not a {other}"
            )))
        }
    }
    if !(MIN_TOKEN_SECS..=MAX_TOKEN_SECS).contains(&ttl_secs) {
        return Err(Refused::Invalid(format!(
            "a token lives {MIN_TOKEN_SECS} s to {MAX_TOKEN_SECS} s (7 days); {ttl_secs} s is out of range"
        )));
    }
    let now = now_unix();
    let t = JoinToken::new(
        ca.root_fingerprint(),
        ctx.advertise.clone(),
        label.to_string(),
        role,
        now + ttl_secs as i64,
    );
    ctx.store.insert_token(&TokenRecord {
        id: t.id,
        secret: t.secret,
        label: t.label.clone(),
        role: t.role.clone(),
        created_unix: now,
        expires_unix: t.expires_unix,
        used: None,
    })?;
    Ok(t)
}

/// Redeems a join token: checks it is known, unused and unexpired and that
/// the caller holds its secret, then issues the certificate for `csr`.
/// Returns the new chain. The token is used up in the same step.
/// A refused join is reported here as a warning status message (once a
/// minute per token), so the operator at the issuing site sees why a node
/// could not join; the joining node's own log says it too.
pub fn redeem(
    ctx: &Ctx,
    id: &[u8],
    csr: &[u8],
    proof: &[u8],
    from: &str,
) -> Result<Vec<Vec<u8>>, Refused> {
    let r = redeem_inner(ctx, id, csr, proof);
    if let Err(Refused::Denied(why)) = &r {
        let token = ctx
            .store
            .tokens()
            .ok()
            .and_then(|ts| ts.into_iter().find(|t| t.id.as_slice() == id));
        let (what, label) = match &token {
            Some(t) if t.role == "member" => ("member server", t.label.clone()),
            Some(t) => ("site", t.label.clone()),
            None => ("an unknown", "node".to_string()),
        };
        let key = format!("join-refused:{}", hex::encode(id));
        if ctx.links.should_report(&key) {
            let _ = crate::status::emit(
                ctx,
                &catalog::TRUST_JOIN_REFUSED,
                &[
                    from.to_string(),
                    what.to_string(),
                    label,
                    hex::encode(id),
                    why.clone(),
                ],
            );
        }
    }
    r
}

fn redeem_inner(ctx: &Ctx, id: &[u8], csr: &[u8], proof: &[u8]) -> Result<Vec<Vec<u8>>, Refused> {
    let id: [u8; 16] = id
        .try_into()
        .map_err(|_| Refused::Invalid("a token id is 16 bytes".into()))?;
    let ca = authority(&ctx.store)?;
    let here = ca.name().site_path(Role::Ca);
    let now = now_unix();
    let r = ctx.store.redeem_token(
        &id,
        now,
        |t| {
            if let Some((at, _)) = t.used {
                return Err(TokenRefusal::Used { at_unix: at });
            }
            if now >= t.expires_unix {
                return Err(TokenRefusal::Expired {
                    at_unix: t.expires_unix,
                });
            }
            if !token::verify_proof(&t.secret, &t.id, csr, proof) {
                return Err(TokenRefusal::BadProof);
            }
            Ok(())
        },
        |t| {
            let role = Role::parse(&t.role)
                .ok_or_else(|| TokenRefusal::Other(format!("unknown role {}", t.role)))?;
            // A child primary gets an authority of its own, constrained to
            // its subtree; everyone else a leaf.
            let issued_role = if role == Role::Primary {
                Role::Ca
            } else {
                role
            };
            let name = Name {
                label: t.label.clone(),
                ancestors: here.clone(),
            };
            let chain = ca
                .issue_lasting(csr, issued_role, &name, lifetime(ctx))
                .map_err(|e| TokenRefusal::Other(e.to_string()))?;
            let serial = sms_trust::Identity::from_der(&chain[0])
                .map(|i| i.serial)
                .unwrap_or_default();
            Ok((serial, chain))
        },
    )?;
    r.map_err(|refusal| match refusal {
        TokenRefusal::Unknown => Refused::Denied(
            "this join token was not issued here (or its site was reinstalled); make a new one \
             with `controller token create` at the parent"
                .into(),
        ),
        TokenRefusal::Used { at_unix } => Refused::Denied(format!(
            "this join token was already used (at unix time {at_unix}); a token works once: make \
             a new one with `controller token create`"
        )),
        TokenRefusal::Expired { at_unix } => Refused::Denied(format!(
            "this join token expired at unix time {at_unix}; make a new one with `controller token create`"
        )),
        TokenRefusal::BadProof => Refused::Denied(
            "the proof does not match this join token's secret; the token was altered or copied wrongly"
                .into(),
        ),
        TokenRefusal::Other(m) => Refused::Invalid(m),
    })
}

/// Issues an administrator certificate for the public key in `csr`. Its
/// scope is this site's subtree.
pub fn issue_admin(
    ctx: &Ctx,
    name: &str,
    role: AdminRole,
    csr: &[u8],
) -> Result<Vec<Vec<u8>>, Refused> {
    check_label(name).map_err(|e| Refused::Invalid(e.to_string()))?;
    let ca = authority(&ctx.store)?;
    let here = ca.name().site_path(Role::Ca);
    ca.issue(
        csr,
        Role::Admin(role),
        &Name {
            label: name.to_string(),
            ancestors: here,
        },
    )
    .map_err(|e| Refused::Invalid(e.to_string()))
}

/// Issues an administrator certificate with a key made here (the first
/// administrator of a new hierarchy, written for its operator).
pub fn issue_local_admin(store: &Store, name: &str) -> Result<Credentials, Refused> {
    let ca = authority(store)?;
    let here = ca.name().site_path(Role::Ca);
    ca.issue_own(
        Role::Admin(AdminRole::Full),
        &Name {
            label: name.to_string(),
            ancestors: here,
        },
    )
    .map_err(internal)
}

/// For a child primary: its own authority from the chain its parent issued,
/// and its site server's certificate under it.
pub fn install_child_authority(
    store: &Store,
    creds: &Credentials,
    code: &SiteCode,
    ancestors: &[SiteCode],
    lifetime: Option<std::time::Duration>,
) -> Result<Credentials, Refused> {
    let ca = Authority::load(creds).map_err(internal)?;
    install_authority(store, &ca, code, ancestors, lifetime)
}

/// Revokes every certificate this node issued to site (or member) `label`,
/// with its join tokens and by renewal; returns how many. The caller makes
/// it durable.
pub fn revoke_site(ctx: &Ctx, label: &SiteCode) -> Result<usize, Refused> {
    let mut n = 0;
    for serial in ctx.store.issued_serials(label.as_str())? {
        if !ctx.store.is_revoked(&serial)? {
            ctx.store
                .revoke(&serial, &format!("site {label} was deleted"))?;
            n += 1;
        }
    }
    Ok(n)
}

fn lifetime(ctx: &Ctx) -> Option<std::time::Duration> {
    *ctx.cert_lifetime.lock().unwrap_or_else(|p| p.into_inner())
}

/// Renews the certificate of a neighbour that holds one this node issued:
/// the same name and role (taken from the certificate it connected with,
/// never from the request) for the key in `csr`. A child primary renews its
/// authority this way (it presents its site server's certificate, issued by
/// that authority; the request carries the authority's key). Returns the new
/// chain; the caller makes the record durable before answering.
pub fn renew(
    ctx: &Ctx,
    caller: &sms_trust::Identity,
    caller_serials: &[String],
    csr: &[u8],
) -> Result<Vec<Vec<u8>>, Refused> {
    let ca = authority(&ctx.store)?;
    let here = ca.name().site_path(Role::Ca);
    if caller.name.ancestors != here {
        return Err(Refused::Denied(format!(
            "{} was not issued by this site's authority; a certificate is renewed by the site              that issued it",
            caller.subject
        )));
    }
    let issued_role = match caller.role {
        Role::Secondary | Role::Member => caller.role,
        // The caller's own site-server certificate names it; what it
        // renews here is the authority this site issued it.
        Role::Primary => Role::Ca,
        other => {
            return Err(Refused::Denied(format!(
                "a {other} certificate is not renewed this way; an administrator gets a new one                  with `controller admin issue`"
            )))
        }
    };
    // The certificate presented (a leaf for secondaries and members, the
    // authority for a primary) must be one this site issued and has not
    // revoked since.
    let presented = match caller.role {
        Role::Primary => caller_serials.get(1),
        _ => caller_serials.first(),
    };
    let issued = ctx.store.issued_serials(&caller.name.label)?;
    if !presented.is_some_and(|s| issued.iter().any(|i| i.eq_ignore_ascii_case(s))) {
        return Err(Refused::Denied(format!(
            "{} holds no certificate this site issued it (was the site deleted and created              again?); join again with a new token",
            caller.subject
        )));
    }
    let chain = ca
        .issue_lasting(csr, issued_role, &caller.name, lifetime(ctx))
        .map_err(|e| Refused::Invalid(e.to_string()))?;
    let serial = sms_trust::Identity::from_der(&chain[0])
        .map_err(internal)?
        .serial;
    ctx.store
        .record_issued(&caller.name.label, &serial, now_unix())?;
    Ok(chain)
}

/// A central or child primary renews its site server's certificate itself,
/// from its own authority. Returns the new credentials, stored (the caller
/// makes them durable and puts them in use).
pub fn renew_own(ctx: &Ctx) -> Result<Credentials, Refused> {
    let ca = authority(&ctx.store)?;
    let current = node_credentials(&ctx.store)?
        .ok_or_else(|| Refused::Precondition("this node holds no certificate".into()))?
        .identity()
        .map_err(internal)?;
    let own = ca
        .issue_own_lasting(current.role, &current.name, lifetime(ctx))
        .map_err(internal)?;
    ctx.store.set_node_credentials(&to_stored(&own))?;
    Ok(own)
}

/// A child primary's request to renew its authority: a signing request for
/// the authority's own key, so that what it already issued stays valid
/// under the renewed certificate. None for a node without an authority.
pub fn authority_renewal_request(ctx: &Ctx) -> Result<Option<Vec<u8>>, Refused> {
    let Some(c) = ctx.store.ca_credentials()? else {
        return Ok(None);
    };
    let key = from_stored(c).key_pair().map_err(internal)?;
    Ok(Some(
        sms_trust::ca::signing_request(&key).map_err(internal)?,
    ))
}

/// Keeps a renewed authority certificate (same key) from the parent.
pub fn set_authority_chain(ctx: &Ctx, chain: Vec<Vec<u8>>) -> Result<(), Refused> {
    let c = ctx
        .store
        .ca_credentials()?
        .ok_or_else(|| Refused::Precondition("this node holds no authority".into()))?;
    let renewed = StoredCredentials {
        key_pkcs8: c.key_pkcs8,
        chain,
    };
    let id = from_stored(renewed.clone()).identity().map_err(internal)?;
    if id.role != Role::Ca {
        return Err(Refused::Invalid(
            "the parent answered with a certificate that is not an authority".into(),
        ));
    }
    ctx.store.set_ca_credentials(&renewed)?;
    Ok(())
}

/// The authority's own certificate, if this node has one.
pub fn authority_identity(ctx: &Ctx) -> Result<Option<sms_trust::Identity>, Refused> {
    match ctx.store.ca_credentials()? {
        Some(c) => Ok(Some(from_stored(c).identity().map_err(internal)?)),
        None => Ok(None),
    }
}

/// Revokes one certificate by serial (hex, as `controller certs` shows it).
pub fn revoke_serial(ctx: &Ctx, serial: &str, why: &str) -> Result<(), Refused> {
    let s = serial.trim().to_ascii_lowercase();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refused::Invalid(format!(
            "{:?} is not a certificate serial (hex digits, as `controller certs` shows)",
            sms_trust::clip(serial)
        )));
    }
    ctx.store.revoke(&s, why)?;
    Ok(())
}

/// Queues this site's whole revocation list to `child` (or to every direct
/// child when None), so the subtree refuses what was revoked here too: a
/// revoked administrator is refused below as well, not only where it was
/// issued. The list is small and sent whole, so a child that missed one (a
/// severed link, a new child) catches up with the next. The caller makes it
/// durable. Returns the number of children it was queued for.
pub fn send_revocations_down(ctx: &Ctx, child: Option<&SiteCode>) -> Result<usize, Refused> {
    let Some(me) = ctx.identity() else {
        return Ok(0);
    };
    let list = ctx.store.revocations()?;
    if list.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for rec in ctx.store.sites()? {
        let direct = rec.parent_site_code.as_ref() == Some(&me.site_code);
        let live = !matches!(rec.status, sms_types::SiteStatus::Deleting);
        if !direct || !live || child.is_some_and(|c| c != &rec.site_code) {
            continue;
        }
        let job = sms_types::Job::new(
            me.site_code.clone(),
            rec.site_code.clone(),
            sms_types::Priority::High,
            sms_types::Payload::Revocations(list.clone()),
        );
        ctx.store.enqueue(&rec.site_code, &job)?;
        ctx.links.wake(&rec.site_code);
        n += 1;
    }
    Ok(n)
}

/// Takes a revocation list from this site's parent: records what is new
/// here; true if anything was (the caller passes the list on down and
/// makes it durable).
pub fn accept_revocations(ctx: &Ctx, list: &[(String, String)]) -> Result<bool, Refused> {
    let mut new = false;
    for (serial, why) in list {
        if !ctx.store.is_revoked(serial)? {
            ctx.store.revoke(serial, why)?;
            tracing::warn!(serial = %serial, "certificate revoked by an ancestor: {why}");
            new = true;
        }
    }
    Ok(new)
}

/// Whether any certificate of a presented chain (serials, hex) is revoked
/// here.
pub fn any_revoked(ctx: &Ctx, serials: &[String]) -> Result<Option<String>, Refused> {
    for s in serials {
        if ctx.store.is_revoked(&s.to_ascii_lowercase())? {
            return Ok(Some(s.clone()));
        }
    }
    Ok(None)
}

/// A signature by this node over `unsigned` (a record whose signature
/// field is empty); `None` on an `--insecure` node, which has no key.
fn sign_body<T: serde::Serialize>(ctx: &Ctx, unsigned: &T) -> Result<Option<SignedBody>, Refused> {
    let Some(creds) = node_credentials(&ctx.store)? else {
        return Ok(None);
    };
    let body = postcard::to_allocvec(unsigned).map_err(internal)?;
    let signature = sms_trust::sign::sign(&creds, &body).map_err(internal)?;
    Ok(Some(SignedBody {
        body,
        signature,
        chain: creds.chain.clone(),
    }))
}

/// Checks a signature against this hierarchy's root and decodes what was
/// signed: the signer and the signed record.
fn open_signed<T: serde::de::DeserializeOwned>(
    creds: &Credentials,
    s: &SignedBody,
) -> Result<(sms_trust::Identity, T), String> {
    let who = sms_trust::sign::verify(creds.root(), &s.chain, &s.body, &s.signature)
        .map_err(|e| format!("its signature is not valid: {e}"))?;
    let body =
        postcard::from_bytes(&s.body).map_err(|_| "its signed body does not decode".to_string())?;
    Ok((who, body))
}

/// Signs a CT1 with this node's key (nothing on an `--insecure` node,
/// which has none). The body is the CT1's encoding without a signature.
pub fn sign_ct1(ctx: &Ctx, ct1: &mut Ct1) -> Result<(), Refused> {
    ct1.signature = None;
    ct1.signature = sign_body(ctx, &*ct1)?;
    Ok(())
}

/// The CT1 to apply: on a secure site, the signed body, if the signature
/// is valid under this hierarchy's root and the signer is this site or one
/// of its ancestors; otherwise why not (the CT1 goes to the bad box). An
/// `--insecure` site takes the CT1 as it is.
pub fn verified_ct1(ctx: &Ctx, ct1: &Ct1) -> Result<Ct1, String> {
    let Some(creds) = node_credentials(&ctx.store).map_err(|e| e.to_string())? else {
        return Ok(ct1.clone());
    };
    let s = ct1.signature.as_ref().ok_or(
        "it carries no signature (a secure site applies only CT1s signed by itself or an ancestor)",
    )?;
    let (who, mut body): (_, Ct1) = open_signed(&creds, s)?;
    let signer = who.site().ok_or_else(|| {
        format!(
            "it was signed by {} ({}), not by a site",
            who.name.label, who.role
        )
    })?;
    let id = ctx.identity().ok_or("no site is installed")?;
    if signer != id.site_code && !id.ancestors.contains(&signer) {
        return Err(format!(
            "it was signed by site {signer}, which is neither this site nor one of its ancestors"
        ));
    }
    body.signature = ct1.signature.clone();
    Ok(body)
}

/// Signs a CT2 with this node's key (nothing on an `--insecure` node).
pub fn sign_ct2(ctx: &Ctx, ct2: &mut Ct2) -> Result<(), Refused> {
    ct2.signature = None;
    ct2.signature = sign_body(ctx, &*ct2)?;
    Ok(())
}

/// The CT2 to record: on a secure site, the signed body, if the signature
/// is valid under this hierarchy's root and the signer is the site the
/// report is about; otherwise why not. An `--insecure` site takes it as is.
pub fn verified_ct2(ctx: &Ctx, ct2: &Ct2) -> Result<Ct2, String> {
    let Some(creds) = node_credentials(&ctx.store).map_err(|e| e.to_string())? else {
        return Ok(ct2.clone());
    };
    let s = ct2
        .signature
        .as_ref()
        .ok_or("it carries no signature (a secure site records only reports signed by the site they are about)")?;
    let (who, mut body): (_, Ct2) = open_signed(&creds, s)?;
    if who.site().as_ref() != Some(&body.site_code) {
        return Err(format!(
            "it reports on site {} but was signed by {} ({})",
            body.site_code, who.name.label, who.role
        ));
    }
    body.signature = ct2.signature.clone();
    Ok(body)
}
