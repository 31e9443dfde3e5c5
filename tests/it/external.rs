//! Tokens from the product's own identity provider (`[auth.external]`): an HS256 secret,
//! PEM public keys of each family, and a JWKS served by a real HTTP server in the test
//! that rotates its keys, fails, and counts the fetches it sees. Users are created on
//! first use; refused tokens get 401 `invalid_token` and nothing more.

use crate::support::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ISS: &str = "https://id.example.test";
const AUD: &str = "chatd-test";
const SECRET: &str = "the-shared-secret-of-the-provider-0123456789";

const RSA_A: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCMhs689yAXmfI0
1lB2bj2ApUulvR28CD1i51OTGvoGH/Aq4HIHZjYqdIcb93eWRFeIeZgUSZfV5NT5
bgYuCcmGzldxxSQLQ43GrCod3G362IhL5Rzg4u4M+akkMgixT+fg7igpNjixFEv2
GKVGd45RHuWUvBCNm120bj/Tn9frHr8nbV/mpHfjGWCnMMnZ4lMzMmrH4W6HoNO2
0qZlC1Tde01jc5PZXVQehlh7bPHAMf8Ev7FF16d5ngQ6WmZ9s5XPRy/Ze7RDJhmy
HrTmAVMcF0fF/y/P6Fsnla39fM8mSjJkdVNggDFlzteU8viiXOMUnIqDws6yB6wq
00ojMPY5AgMBAAECggEACCk/wkQvijIFLxHflZKEl7R3KU6Ldp3bjiNP8dFlggEN
Vjl3jdv0WzCuHw7saZ7u9CIBqx30sjX1CMZdwq3hVRGl4kQteh+n0R5dtM3A2l+v
F19HNyf0D29ZZhzSGerBf/Png7CJMtQyWX4Swn3+LH0OSWjG+lOyqbWkbHfSQZk5
vxClxPaoPKStq4SDPmz6jxTtgGHvIsNBV1lVTxBKfwZOZ3FBmBv8s+yU4T4MKHrn
3oqV3t0sFYFNt3YZGU5VQdzjxNPzZGtbsj3WHi7Odl8GMOwQM6vKK1f6pcqW5Vyu
T4FSOePN5ZTwwRjgmlVRom+8xfeQDtrw7Octgh44vQKBgQC/xuJAl/YhAIBUjogO
e9Qk+whU02oGty1NFiTmSnJFe54FooYTP20smy4KeAYWhxKijwiLqfnshkA2x0gm
2SrgABVvvvzSYo1N1dZOO9x13G68aG0zwB8OgoK7l+nIbw8hky+z6qpnGhgHlfRR
lTLD6c5Oz43j7jdQYWRdCSUL7QKBgQC7ljakia3iE+8GT1dNAJTkxa6RJ9/xvdmM
P4UhkOiO6lr2N4UjpRHkhCCZFo8liH9B0SGktm/V19Ba50hEIhprtV4Wu15aQTj1
dFzedGhiX65V+a0xyBkgT57Wralx8Z/sO19eQlyeFcgtQZRiSRrPlg+8lvzCHH3c
dibmyCFB/QKBgBtKQ/wJI99CYQCnX7kf6epxRpg7lYTrICkuE4Yp5eT5WF1Y6Vdn
2TNVydF3jvY5tm8nh4HIaGY+HHkvFpdgo/dIS8ShGv0dRRpkaaCsaAzll2R8P73z
gvffnpbvYTdChpayiUFDDYiqb+z0a9YIMzcp2E/ivUBIL9riYRPUL09pAoGACexx
aZTrAPnC/Fd4K9erCMs4Z+9vFm/PsW6u0U7ELsNRGpNnVLJn1unye4bI/dhRux6g
JAGOuwZWvGhd11Tihu4qUxOIc0feBoYoX5BS8VlUdLHnqqmGQsJTidHYE/IPXsTp
T6g9FBPc6h/9BJIPfAnZPUXTi0VMlzwc5LqTn9UCgYA24m4Y7gqc8eXHLov8obW/
sBTa3dBi9+FBfKXYRB7d4c056NesgdZL52NrNCzmymhn+SReGDolhdMAxXpZqvKi
OQsw7sq+f6OC9UdadHMq0Bc3KvlpOse2FIlK+RV9xnDBopYfjetCTkESIH2EzFf9
poifKFOuQ/uHteyy/IjwBg==
-----END PRIVATE KEY-----";

const RSA_B: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCTRrluSCN67pqJ
i2x4oNqWIx6mm17L218ks/HrhpbcWVEqu48BlMOwf7e1ubG51b7AHjBjwJMJ5rFH
WWfgNIMs7t4TTYDKjqoEBiesn/83SOVK3S76BovVkf8vb3pf4+t3Xyyk+Okn6lrT
QU3zZBE/4RyuKJcaq9qpDycALS9K9GuTnrSDOF9giJYaoyqKIXPTjQAE2S+16zxH
WkBjX5+FfPwc7wvYr6g5eKCFBnOs7X8EeqCZzkmQOxHwqaxu9Wiw61sPUU6YVxfU
ojZHSFNZUq72E3noTqq5T4XC097DXkIG1YHmrVVh1RSFMo0k6XEyGEgXD5vywmFm
+wg7ThQDAgMBAAECggEALhhUsU+iyzci5yncKWUvBQ646Sx33xYqETLA5Raa4RyT
auyJNdV56iQPO7GDDsb3jOnl+1Kqss6hbdNtz56f79BTcXcweDVuwROsFzt8hbEr
EuNncJnb6lxnolEh3CFZ8WK4dmnxj6yqALTP0P3g6D1s3JWXtaFULtWvPz7lLnAY
Kc/OSFwg7ROwpP3PCGhSwz3bdYUV7S+50DFEwD1pQkvPfWZadkgRMmqPh4b2q2b5
NTt8gifFgLP3gzdoyEPQ67KB0+tk6AWGWUNStyCfMpAb4klY88AjazFFvvwG2NhW
uZh37Ge/KA6IHt3CGSIhmWXBiaBSc7ri+ov48IsaAQKBgQDF5k6zkbFdiKjilaZz
UQcL55I589WXibk+SBv2lmgc3ShN9N+DgRbOk0IbHxYK3vXnbiElEYog36hGW8yO
GkfNVIjuvDA8fbg+sg9pDbynMFlCdsWrFPIinAF7JlhC+FMXeSznWUu+U6xCADo9
ghE/8XA82urivEhDVG5Fm+fPawKBgQC+g62Oa5tCbWHtHvdGH0BoLUUS53jePBmK
+k//spS+94ssPo1wBbGEpqpQ2qzv9rug0f9my07YtXKK/hzeb0dzoQjLS8aAfSLc
vpvWes1KeQ7PUBy+fMh5MjaqjuHGqk4RKzj1jJYp1BRAlHjl6kevHJ7r5EHtR+IS
ORpLpu/ryQKBgAfzZcwPGWohmG9qBcLySW8wAY70fetVrCyVZxI0HsCyHfFr2iMF
Z64q+mfuissrBAQlR42es8b4VWFmRMScx6+3Kr00sFdt0Z4rNzVISQEKjzt9XBmw
gL3lOKYC917RbT0vMB+nVcSyxePs8GoSNLE1+QVo4jDz0Y9q7/c5+Uk7AoGAT388
5cgLMm3YRgz829rgklgJkbjbG8jyU6bdyPHo1cMP5Pd5J3yItbSiLzkAnuVTJ+lY
7Lj7frxAPrWIsFy48QwKUmKdQzJ0YK588sOtdF0Ni/5+8BG7ya7lVshmd/LKvqlN
jFEMvAmOJeCOjknzfaOwwPgvdmbfdAE18smHJdkCgYEAhe4FTDMGYf/faBdLCSyp
CRlDBuB7/DhGR4BwOmVCwhimifmGG8jR/+5ieFrntlSh8V5joWp3QzEj+LJVZ/iA
6XJ394s7vC1pSQzE+t25U7ErZNFUcXOLZZ0Rt8UXDLak6/XyasW5aUTotd5ks+Xz
BUGpccVBOPM1dQ+EqwjlGG0=
-----END PRIVATE KEY-----";

const RSA_EVIL: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC6DQF2NfYFrtbc
y7QFTAzSAV7dVEgeiQMpH10al1J4has+pOdCuy0tooQRwy7PIVaccq00KaAdIHAp
XTnY04wAjmUs72uWboYUKRwq31MMSLQ6IDJP7kpFdf1LmLxZwwq1xsW6SrzJRXdq
SRKQkKPHY4wS0rBj71VAbEZ0QcUvkSG9mrtn9Yh+ONLGGvf2l1zwElEKJZxuJA3Y
OWVszOxePTIP1tLYAAbEtOEnJGg/zEQaJe9hvGaiftgseSPuvkkBLnSCaENLdZe9
1ZeiONEAjECBXE+i094xHrRf++4PDDl5v4bYWVIdsBDuM2nwVTJDCJyR9p+GVVgj
r1PYaV4LAgMBAAECggEAELzLyrPXDV1/Hz+aKIyAw2xzztXeuRSFZW/YuI7a0Knh
z9HBAPwFd/YHYJuzvIGYy5v2ILEKok7WmE9hPV7mrkQhLlY0Um+1/d6m6zp1EQVX
ZWVGcXIUBMS1GVXFGA7XtKZhsmfigk7kC8/wF3OpBZkwiEmjrGc4aa0eoiXVP06X
7DtprmJOQnVG2+h+CBhiGtOrDhq6zNfbmCnzHwNCmisEUIqWv9zkT2k591am+lST
DQLHFIX+26R1+N6bTjfcGjWCYk/u8QIimaBsOZwfmB6EIY6cyhJCd1GKdQWP22tG
z72u96wN+VUBGncBHlgpAsp6PZw+TviVGA+19CSKZQKBgQDtmJP5DG0tukYKl/Lq
QjsIrXZn5qU7CLivLAmsxL3sxVSYvyIO5baInUx+xaK0fxRZmT57qqmIO0a4pi2m
F1QpIOYjZKVDRnVv4KsA2FcrxmmExh9ZZwjhpBM4XKZA53FCXhQ3GgmAv5fyuZlH
3ruyW0cMDQHvk5CMNdOjliuSBwKBgQDIdk85e7cMDA3C4dgaw1gsfgwMm86r97t9
lkk9fReIZY0rqViUDGmwVbqE/c7cciADu//mqkEPEHkTQihQOKtV3dMKkqwOSSN1
iCXmGD9d70CS9NUDOuLdvZ/2m6rbse/t3bGidV8jkUYAdN/MMmJrdq6ya3JsDuyn
Xrz7egXC3QKBgELLOg4xqB/K1hX0UZ35sI7n9PmQpbLK6OCWCMJBLQN7FiU61mBJ
w970GaUp+muzrgziP+aUO8TIpUETtpGSzV4imZApoyweirVA+9Ho/9iWluN0ryt7
A8wrTBv0L+jfJ7/4osY606EWO6lI9AZ4X1vsvTRuE7U+Tsyb9Ttv5B/RAoGAcSAS
5WWjjvDeczPwOGo0wCcBtbvXjcRn0h+VhVWqihaE7DbM/f9jRVebwqFYs57T4ked
yhYaUN4C9ZNIHL1eMz7TcgwDfKxZjmIewRK978ysrEHuU7xPesMgGpMOgJyRwbJy
JDQIVJIO5wMNqLZmRC7dt2JbWA+0DV+xVlkuFyECgYAOvdZPfeKUAXuQjxFjFyXv
UUWDlosJEIs0ahssi3bp5IXNXGJLpHb8iMj1Wk3J160lbGCiUj8hjXOpdm/n0kUv
kd/F9zHggMs0Hxjzrizp8FiEpbrNJ8OMnb5+0AbImiGXS/vYDFubXcRmF34iP+zJ
1V21jX4w4KnqZ8IzETMinw==
-----END PRIVATE KEY-----";

const RSA_A_PUB: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjIbOvPcgF5nyNNZQdm49
gKVLpb0dvAg9YudTkxr6Bh/wKuByB2Y2KnSHG/d3lkRXiHmYFEmX1eTU+W4GLgnJ
hs5XccUkC0ONxqwqHdxt+tiIS+Uc4OLuDPmpJDIIsU/n4O4oKTY4sRRL9hilRneO
UR7llLwQjZtdtG4/05/X6x6/J21f5qR34xlgpzDJ2eJTMzJqx+Fuh6DTttKmZQtU
3XtNY3OT2V1UHoZYe2zxwDH/BL+xRdeneZ4EOlpmfbOVz0cv2Xu0QyYZsh605gFT
HBdHxf8vz+hbJ5Wt/XzPJkoyZHVTYIAxZc7XlPL4olzjFJyKg8LOsgesKtNKIzD2
OQIDAQAB
-----END PUBLIC KEY-----";

const EC: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqiCn9KDzKWVl2aQU
6osbmh09sguYuBng9Xx+iWJsTmqhRANCAASMmceYXFRP+mD9Uf5N3Zh7C3sOirB/
w9Iv22BX+Jfq+EMyuPG3lK4d8rj167om0r+wvSnF6G8WXC055L833Ges
-----END PRIVATE KEY-----";

const EC_PUB: &str = "\
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjJnHmFxUT/pg/VH+Td2Yewt7Doqw
f8PSL9tgV/iX6vhDMrjxt5SuHfK49eu6JtK/sL0pxehvFlwtOeS/N9xnrA==
-----END PUBLIC KEY-----";

const ED: &str = "\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIBVXeZ2XsXFzfQwnM5exFiEmQ1/fI+r43xtwWXLR3HGp
-----END PRIVATE KEY-----";

const ED_PUB: &str = "\
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAkop0fQPsPgZ8TReZ7U4OPPL+6tzWqiO3yXZNrXjDGmY=
-----END PUBLIC KEY-----";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `sub`, with `extra` merged in.
fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": now(), "exp": now() + 300});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        None,
        claims,
    )
}

fn rsa(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

fn b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with the given raw header, the claims, and a signature of bytes.
fn forged(header: Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

/// The answer to a refused token: exactly 401 `invalid_token`, no detail.
fn assert_refused(addr: &str, token: &str, what: &str) {
    let r = raw_request(addr, "GET", "/me", Some(token), None);
    assert_eq!(
        r.status,
        401,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.json(),
        json!({"statusCode": 401, "message": "Invalid or expired token", "error": "Unauthorized", "code": "invalid_token"}),
        "{what}"
    );
}

fn me(addr: &str, token: &str) -> Value {
    let (status, body) = request(addr, "GET", "/me", Some(token), None);
    assert_eq!(status, 200, "{body}");
    body
}

fn external_config(c: &mut chatd::config::Config) {
    c.auth.external.issuer = ISS.into();
    c.auth.external.audience = AUD.into();
}

fn metric(node: &Node, name: &str) -> f64 {
    let r = raw_request(&node.metrics(), "GET", "/metrics", None, None);
    let text = String::from_utf8_lossy(&r.body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn first_use_creates_the_user_and_later_requests_know_it() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        external_config(c);
        c.auth.external.hs256_secret = SECRET.into();
    });
    let a = node.addr();
    // A local user already holds the name the provider's user would get.
    let (status, _) = request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "ann", "email": "ann@example.com", "password": "password123"})),
    );
    assert_eq!(status, 201);

    let ann = hs(&claims(
        "user|1",
        json!({"preferred_username": "Ann", "name": "Ann Lee", "email": "ann@corp.example"}),
    ));
    let first = me(&a, &ann);
    assert_eq!(first["username"], "Ann_2", "a taken name gets a suffix");
    assert_eq!(first["display_name"], "Ann Lee");
    assert_eq!(
        first["email"],
        Value::Null,
        "an external account has no e-mail"
    );
    let id = first["id"].as_str().unwrap().to_string();
    // Later requests (a fresh token too) are the same user; so is any route.
    assert_eq!(me(&a, &ann)["id"], id.as_str());
    let again = hs(&claims(
        "user|1",
        json!({"preferred_username": "Someone Else"}),
    ));
    assert_eq!(me(&a, &again)["id"], id.as_str());
    let room = create_room(&a, &ann);
    let mut c = Http::connect(&a);
    let m = post_message(&mut c, &ann, &room, "hello from the product");
    assert_eq!(m["user_id"], id.as_str());
    assert_eq!(m["username"], "Ann_2");
    let (status, members) = request(
        &a,
        "GET",
        &format!("/rooms/{room}/members"),
        Some(&ann),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(members[0]["display_name"], "Ann Lee");

    // Other claims: the username falls back to `name`, then `sub`.
    let bob = hs(&claims("auth0|5f3a", json!({"name": "Bob Stone"})));
    assert_eq!(me(&a, &bob)["username"], "Bob Stone");
    let anon = hs(&claims("auth0|77ab", json!({})));
    let anon_me = me(&a, &anon);
    assert_eq!(anon_me["username"], "auth0_77ab");
    assert_eq!(anon_me["display_name"], Value::Null);

    // The first request of a user that two requests make at once: one user.
    let carol = hs(&claims(
        "user|carol",
        json!({"preferred_username": "carol"}),
    ));
    let ids: Vec<String> = (0..4)
        .map(|_| {
            let (a, t) = (a.clone(), carol.clone());
            std::thread::spawn(move || me(&a, &t)["id"].as_str().unwrap().to_string())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");

    // What the database holds.
    let mut pg = db.client();
    let row = pg
        .query_one(
            "SELECT external_issuer, external_id, email, password_hash FROM users WHERE id = $1::text::uuid",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(ISS));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("user|1"));
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert_eq!(row.get::<_, Option<String>>(3), None);
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM users WHERE external_id = 'user|carol'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert_eq!(metric(&node, "chatd_external_users_created_total"), 4.0);
}

#[test]
fn refused_tokens_get_invalid_token_and_nothing_more() {
    let db = TestDb::new();
    let hs_node = start_with(&db, |c| {
        external_config(c);
        c.auth.external.hs256_secret = SECRET.into();
        c.auth.external.leeway_secs = 30;
    });
    let a = hs_node.addr();
    let ok = claims("user|r", json!({"preferred_username": "rita"}));
    assert_eq!(me(&a, &hs(&ok))["username"], "rita");
    let with = |k: &str, v: Value| {
        let mut c = ok.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = ok.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    // Within the leeway: still good.
    assert_eq!(
        me(&a, &hs(&with("exp", json!(now() - 10))))["username"],
        "rita"
    );
    assert_eq!(
        me(&a, &hs(&with("nbf", json!(now() + 10))))["username"],
        "rita"
    );
    let sig = hs(&ok).rsplit('.').next().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("expired", hs(&with("exp", json!(now() - 120)))),
        ("not yet valid", hs(&with("nbf", json!(now() + 120)))),
        ("wrong audience", hs(&with("aud", json!("another-app")))),
        ("no audience", hs(&without("aud"))),
        (
            "wrong issuer",
            hs(&with("iss", json!("https://evil.example"))),
        ),
        ("no issuer", hs(&without("iss"))),
        ("no exp", hs(&without("exp"))),
        ("no sub", hs(&without("sub"))),
        (
            "wrong secret",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"not-the-secret").unwrap(),
                None,
                &ok,
            ),
        ),
        (
            "alg none",
            forged(json!({"alg": "none", "typ": "JWT"}), &ok, b""),
        ),
        (
            "HS512 header over an HS256 signature",
            forged(json!({"alg": "HS512", "typ": "JWT"}), &ok, sig.as_bytes()),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                hs(&ok).split('.').next().unwrap(),
                b64(with("sub", json!("user|admin")).to_string().as_bytes()),
                sig
            ),
        ),
        ("garbage", "not.a.token".into()),
    ];
    for (what, token) in &cases {
        assert_refused(&a, token, what);
    }

    // A public key: RS256 pinned. The classic confusion: an HS256 token whose "secret"
    // is the public key, and every other algorithm, are refused.
    let db2 = TestDb::new();
    let rs_node = start_with(&db2, |c| {
        external_config(c);
        c.auth.external.public_key_pem = RSA_A_PUB.into();
        c.auth.external.algorithm = vec!["RS256".into()];
    });
    let b = rs_node.addr();
    assert_eq!(
        me(&b, &sign(Algorithm::RS256, &rsa(RSA_A), None, &ok))["username"],
        "rita"
    );
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_A_PUB.as_bytes()).unwrap(),
        None,
        &ok,
    );
    assert_refused(&b, &confused, "HS256 signed with the public key");
    let confused_trimmed = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_A_PUB.trim().as_bytes()).unwrap(),
        None,
        &ok,
    );
    assert_refused(
        &b,
        &confused_trimmed,
        "HS256 signed with the trimmed public key",
    );
    assert_refused(
        &b,
        &sign(Algorithm::PS256, &rsa(RSA_A), None, &ok),
        "PS256 with the right key (not configured)",
    );
    assert_refused(
        &b,
        &sign(Algorithm::RS256, &rsa(RSA_EVIL), None, &ok),
        "RS256 with another key",
    );
    assert_refused(&b, &hs(&ok), "the HS256 provider's token");
    assert_refused(
        &b,
        &sign(
            Algorithm::RS256,
            &rsa(RSA_A),
            None,
            &with("exp", json!(now() - 120)),
        ),
        "expired RS256",
    );
    // Refusals cost no 500 and no panic.
    assert_eq!(metric(&hs_node, "chatd_http_500_total"), 0.0);
    assert_eq!(metric(&rs_node, "chatd_job_panics_total"), 0.0);
}

#[test]
fn pem_keys_of_each_family_verify_their_own_algorithm_only() {
    let db = TestDb::new();
    let ec = EncodingKey::from_ec_pem(EC.as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(ED.as_bytes()).unwrap();
    for (pem, alg, key, other_alg, other_key) in [
        (EC_PUB, Algorithm::ES256, &ec, Algorithm::EdDSA, &ed),
        (ED_PUB, Algorithm::EdDSA, &ed, Algorithm::ES256, &ec),
    ] {
        let node = start_with(&db, |c| {
            external_config(c);
            c.auth.external.public_key_pem = pem.into();
            c.auth.external.algorithm = vec![format!("{alg:?}")];
        });
        let a = node.addr();
        let ok = claims(
            &format!("user|{alg:?}"),
            json!({"preferred_username": format!("{alg:?} user")}),
        );
        assert_eq!(
            me(&a, &sign(alg, key, None, &ok))["username"],
            format!("{alg:?} user")
        );
        assert_refused(&a, &sign(other_alg, other_key, None, &ok), "another family");
        assert_refused(&a, &hs(&ok), "HS256");
    }
    // A key that does not match its algorithm stops the start, naming the key.
    let mut cfg = config(&db.url);
    external_config(&mut cfg);
    cfg.auth.external.public_key_pem = EC_PUB.into();
    cfg.auth.external.algorithm = vec!["RS256".into()];
    let err = chatd::run(cfg).err().expect("refused").to_string();
    assert!(err.contains("auth.external.public_key_pem"), "{err}");
}

#[test]
fn local_accounts_can_be_turned_off() {
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        external_config(c);
        c.auth.external.hs256_secret = SECRET.into();
        c.auth.local_accounts = false;
    });
    let a = node.addr();
    for (path, body) in [
        (
            "/auth/register",
            json!({"username": "zed", "email": "zed@example.com", "password": "password123"}),
        ),
        (
            "/auth/login",
            json!({"email": "zed@example.com", "password": "password123"}),
        ),
        ("/auth/refresh", json!({"refreshToken": "x"})),
    ] {
        let (status, body) = request(&a, "POST", path, None, Some(&body));
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["code"], "local_accounts_disabled", "{path}");
    }
    let n: i64 = db
        .client()
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let t = hs(&claims("user|z", json!({"preferred_username": "zed"})));
    assert_eq!(me(&a, &t)["username"], "zed");
    // Nobody could sign in without either.
    let mut cfg = config(&db.url);
    cfg.auth.local_accounts = false;
    let err = chatd::run(cfg).err().expect("refused").to_string();
    assert!(err.contains("auth.local_accounts"), "{err}");
}

/// A JWKS endpoint: serves the document it holds (or 500 while failing) and counts the
/// requests it answers.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<Value>>,
    fail: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(doc: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let s = JwksServer {
            url,
            doc: Arc::new(Mutex::new(doc)),
            fail: Arc::new(AtomicBool::new(false)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let (doc, fail, hits) = (s.doc.clone(), s.fail.clone(), s.hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let (status, body) = if fail.load(Ordering::SeqCst) {
                    ("500 Internal Server Error", "oops".to_string())
                } else {
                    ("200 OK", doc.lock().unwrap().to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        s
    }

    fn set(&self, keys: Vec<Value>) {
        *self.doc.lock().unwrap() = json!({ "keys": keys });
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The public JWK of a private key, with its kid.
fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    let set = JwkSet { keys: vec![j] };
    serde_json::to_value(&set).unwrap()["keys"][0].clone()
}

/// Waits past the least time between two fetches.
fn after_refetch_interval() {
    std::thread::sleep(Duration::from_millis(2100));
}

#[test]
fn jwks_keys_rotate_refetch_on_unknown_kid_at_most_once_per_interval_and_survive_failures() {
    let ec = EncodingKey::from_ec_pem(EC.as_bytes()).unwrap();
    let (ka, kb, evil) = (rsa(RSA_A), rsa(RSA_B), rsa(RSA_EVIL));
    let server = JwksServer::start(json!({}));
    server.set(vec![
        jwk(&ka, Algorithm::RS256, "a"),
        jwk(&ec, Algorithm::ES256, "e"),
    ]);
    let db = TestDb::new();
    let node = start_with(&db, |c| {
        external_config(c);
        c.auth.external.jwks_url = server.url.clone();
        c.auth.external.algorithm = vec!["RS256".into(), "ES256".into()];
        c.auth.external.jwks_min_refetch_secs = 2;
    });
    let a = node.addr();
    assert_eq!(server.hits(), 1, "fetched at start");
    assert_eq!(metric(&node, "chatd_jwks_keys"), 2.0);
    let ok = claims("user|j", json!({"preferred_username": "joan"}));
    let tok =
        |key: &EncodingKey, alg: Algorithm, kid: &str, c: &Value| sign(alg, key, Some(kid), c);
    assert_eq!(
        me(&a, &tok(&ka, Algorithm::RS256, "a", &ok))["username"],
        "joan"
    );
    assert_eq!(
        me(&a, &tok(&ec, Algorithm::ES256, "e", &ok))["username"],
        "joan"
    );
    // A key verifies only its own family, and never as a shared secret.
    assert_refused(
        &a,
        &tok(&ka, Algorithm::RS256, "e", &ok),
        "RS256 under an EC kid",
    );
    let confused = EncodingKey::from_secret(RSA_A_PUB.as_bytes()).unwrap();
    assert_refused(
        &a,
        &tok(&confused, Algorithm::HS256, "a", &ok),
        "HS256 with the public key",
    );
    assert_eq!(server.hits(), 1, "known kids need no fetch");

    // Rotation: the provider publishes b beside a, then signs with b.
    server.set(vec![
        jwk(&ka, Algorithm::RS256, "a"),
        jwk(&kb, Algorithm::RS256, "b"),
    ]);
    after_refetch_interval();
    let started = Instant::now();
    assert_eq!(
        me(&a, &tok(&kb, Algorithm::RS256, "b", &ok))["username"],
        "joan",
        "the first request with the new kid waits for the fetch"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.hits(), 2);
    assert_eq!(
        me(&a, &tok(&ka, Algorithm::RS256, "a", &ok))["username"],
        "joan",
        "overlap"
    );
    assert_eq!(metric(&node, "chatd_jwks_keys"), 2.0);

    // An unknown kid right after a fetch: refused at once, no fetch.
    let unknown = tok(&evil, Algorithm::RS256, "c", &ok);
    for _ in 0..5 {
        assert_refused(&a, &unknown, "unknown kid, refetch not allowed yet");
    }
    assert_eq!(server.hits(), 2, "rate-limited");
    // Later: fetched once more, still unknown, refused; then rate-limited again.
    after_refetch_interval();
    assert_refused(&a, &unknown, "unknown kid after a refetch");
    assert_eq!(server.hits(), 3);
    for _ in 0..5 {
        assert_refused(&a, &unknown, "unknown kid");
    }
    assert_eq!(server.hits(), 3);
    assert!(metric(&node, "chatd_jwks_unknown_kid_total") >= 11.0);

    // Another issuer's token whose kid collides with a held one, and a forgery under a
    // held kid: refused, and no fetch.
    let other_iss = {
        let mut c = ok.clone();
        c["iss"] = json!("https://other.example");
        c
    };
    assert_refused(
        &a,
        &tok(&evil, Algorithm::RS256, "b", &other_iss),
        "other issuer, colliding kid",
    );
    assert_refused(
        &a,
        &tok(&kb, Algorithm::RS256, "b", &other_iss),
        "other issuer, even with the key",
    );
    assert_refused(
        &a,
        &tok(&evil, Algorithm::RS256, "b", &ok),
        "forged under a held kid",
    );
    assert_eq!(server.hits(), 3);

    // Retiring a: after the next fetch its tokens are refused.
    server.set(vec![jwk(&kb, Algorithm::RS256, "b")]);
    after_refetch_interval();
    assert_refused(&a, &unknown, "unknown kid (fetches again)");
    assert_eq!(server.hits(), 4);
    assert_refused(&a, &tok(&ka, Algorithm::RS256, "a", &ok), "retired key");
    assert_eq!(
        me(&a, &tok(&kb, Algorithm::RS256, "b", &ok))["username"],
        "joan"
    );
    assert_eq!(metric(&node, "chatd_jwks_keys"), 1.0);

    // A failed fetch keeps the keys last fetched.
    server.fail.store(true, Ordering::SeqCst);
    after_refetch_interval();
    assert_refused(&a, &unknown, "unknown kid (the fetch fails)");
    assert_eq!(server.hits(), 5);
    assert_eq!(
        me(&a, &tok(&kb, Algorithm::RS256, "b", &ok))["username"],
        "joan"
    );
    assert_eq!(metric(&node, "chatd_jwks_fetches_total"), 5.0);
    assert_eq!(metric(&node, "chatd_jwks_fetch_failures_total"), 1.0);
    assert_eq!(metric(&node, "chatd_jwks_keys"), 1.0);
    // A document without a usable key is a failure too.
    server.fail.store(false, Ordering::SeqCst);
    server.set(vec![json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"})]);
    after_refetch_interval();
    assert_refused(&a, &unknown, "unknown kid (an empty set)");
    assert_eq!(metric(&node, "chatd_jwks_fetch_failures_total"), 2.0);
    assert_eq!(
        me(&a, &tok(&kb, Algorithm::RS256, "b", &ok))["username"],
        "joan"
    );
}

#[test]
fn an_external_token_upgrades_a_websocket_after_resolving_its_user() {
    use chatd::auth::Auth;
    use chatd::auth::external::{Caller, External, Unresolved, resolve};
    use chatd::auth::password::Hasher;
    use chatd::auth::tokens::TokenKeys;
    use chatd::pg::pool::{Worker, build_pool};
    let db = TestDb::new();
    let mut cfg = config(&db.url);
    external_config(&mut cfg);
    cfg.auth.external.hs256_secret = SECRET.into();
    chatd::migrate(&cfg).unwrap();
    let metrics = Arc::new(chatd::base::metrics::Metrics::default());
    let keys = TokenKeys::new(b"own-access", b"own-refresh", 60, 600).unwrap();
    let (external, thread) = External::new(&cfg.auth.external, metrics.clone()).unwrap();
    assert!(thread.is_none());
    let auth = Auth::new(keys, Hasher::new(8, 1, 1).unwrap(), Duration::from_secs(1))
        .with_external(external);
    let mut w = Worker::new(build_pool(&db.url, 2, 5).unwrap(), metrics);

    let token = hs(&claims("user|ws", json!({"preferred_username": "wendy"})));
    let Some(Caller::Unresolved(u @ Unresolved::User(_))) = auth.caller(&token) else {
        panic!("a new user needs a worker");
    };
    let id = resolve(&mut w, &auth, u).unwrap();
    assert_eq!(id.username, "wendy");
    let Some(Caller::Known(known)) = auth.caller(&token) else {
        panic!("known after resolving");
    };
    assert_eq!(known, id);
    // chatd's own tokens, and refusals, need no worker.
    let own = auth
        .keys
        .issue_access(id.user_id, "wendy", uuid::Uuid::now_v7());
    assert!(matches!(auth.caller(&own), Some(Caller::Known(_))));
    assert!(auth.caller("not.a.token").is_none());
    // Revoking the external user's session forgets it everywhere: resolving again refuses.
    auth.mark_revoked(&[id.session_id]);
    let Some(Caller::Unresolved(u)) = auth.caller(&token) else {
        panic!("forgotten after a revocation");
    };
    assert_eq!(
        resolve(&mut w, &auth, u).unwrap_err().code(),
        "invalid_token"
    );

    // The upgrade takes the provider's tokens too. A user this node has not met yet
    // upgrades after a worker resolves it (101, then a working socket); a known one on
    // the spot; a refused token is 401 `invalid_token` as on REST.
    let node = start_with(&db, |c| {
        external_config(c);
        c.auth.external.hs256_secret = SECRET.into();
    });
    let addr = node.addr();
    let fresh = hs(&claims("user|ws2", json!({})));
    let mut ws = Ws::connect(&addr, &fresh);
    ws.send("ping", json!({}));
    ws.expect("pong");
    let room = create_room(&addr, &fresh);
    ws.join(&room, None);
    assert_eq!(me(&addr, &fresh)["username"], "user_ws2");
    let mut again = Ws::connect(&addr, &fresh);
    again.send("ping", json!({}));
    again.expect("pong");
    let mut raw = Http::connect(&addr);
    raw.send_raw(
        b"GET /ws?token=not.a.token HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let bad = raw.read().expect("an answer");
    assert_eq!(
        (bad.status, bad.json()["code"].as_str()),
        (401, Some("invalid_token"))
    );
}
