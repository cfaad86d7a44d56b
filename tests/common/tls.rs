//! Certificates of a test's own: a CA (rcgen, self-signed) and a server certificate it signed
//! for the given names (IP addresses or DNS names).

pub struct Identity {
    /// The CA's certificate, PEM (what a client is told to trust).
    pub ca_pem: String,
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

pub fn identity(names: &[&str]) -> Identity {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Identity {
        ca_pem: ca.pem(),
        cert,
        key,
    }
}
