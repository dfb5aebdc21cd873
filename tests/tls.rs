//! Built-in TLS: parkhub serves HTTPS and WSS with a certificate it is given, tested with real
//! TLS clients (reqwest over rustls, and a WebSocket over tokio-rustls) that trust only that
//! certificate. Both backends.

mod common;

use std::sync::Arc;

use common::{Backend, TestServer};
use futures_util::StreamExt;
use parkhub::app::TlsFiles;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

backend_tests!(https_and_wss_with_the_given_certificate);

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
struct Certificate {
    dir: tempfile::TempDir,
    pem: String,
}

fn certificate() -> Certificate {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let dir = tempfile::tempdir().expect("a directory");
    let pem = certified.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &pem).expect("write the certificate");
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .expect("write the key");
    Certificate { dir, pem }
}

async fn https_and_wss_with_the_given_certificate(backend: Backend) {
    let cert = certificate();
    let files = TlsFiles::load(
        cert.dir.path().join("cert.pem"),
        cert.dir.path().join("key.pem"),
    )
    .await
    .expect("the certificate loads");
    let swapped = TlsFiles::load(
        cert.dir.path().join("key.pem"),
        cert.dir.path().join("cert.pem"),
    )
    .await;
    assert!(
        swapped.is_err(),
        "a key given as the certificate is refused at start"
    );
    let server = TestServer::start_with(backend, |c| c.tls = Some(files)).await;
    let https = server.base.replacen("http://", "https://", 1);

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).expect("PEM"))
        .tls_built_in_root_certs(false)
        .https_only(true)
        .build()
        .expect("a TLS client");
    let response = client
        .post(format!("{https}/api/v1/admin/providers"))
        .bearer_auth(&server.operator)
        .json(&json!({"name": "over-tls"}))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(response.status(), StatusCode::CREATED);
    let provider: Value = response.json().await.expect("JSON");
    let token = provider["token"].as_str().expect("a token").to_owned();
    let health = client
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(health.status(), StatusCode::OK);

    // Plain HTTP on the TLS port gets no HTTP answer; a client that does not trust the
    // certificate refuses it.
    let plain = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP must not be served on the TLS port"
    );
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .expect("a client");
    assert!(
        untrusting
            .get(format!("{https}/healthz"))
            .send()
            .await
            .is_err(),
        "an unknown certificate must not be accepted"
    );

    // The TransactionMonitor over TLS (wss://): connects and gets its first heartbeat.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for der in rustls_pemfile_certs(&cert.pem) {
        roots.add(der).expect("a root");
    }
    let config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let address = server.base.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let name =
        tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
    let tls = connector.connect(name, tcp).await.expect("a TLS handshake");
    let mut request = format!("wss://{address}/api/TransactionMonitor?after=latest")
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header"),
    );
    let (mut socket, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("a WebSocket over TLS");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket.close(None).await.expect("close");
    while let Some(Ok(message)) = socket.next().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
    server.stop().await;
}

/// The DER certificates in a PEM text.
fn rustls_pemfile_certs(
    pem: &str,
) -> Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}
