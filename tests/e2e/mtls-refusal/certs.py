#!/usr/bin/env python3
"""Client certificates for the mTLS refusal suite, each wrong in one way, issued from the mesh's
real trust root and issuer (made by `starling certs create`).

    certs.py ROOT.crt ROOT.key ISSUER.crt ISSUER.key OUTDIR [--namespace NS --service-account SA]

For every case NAME it writes OUTDIR/NAME.key (the leaf's key), OUTDIR/NAME.crt (the leaf),
OUTDIR/NAME.chain.pem (the intermediates sent after it, may be empty) and OUTDIR/NAME.pem (leaf and
intermediates, what Python's load_cert_chain takes). `valid` is issued the way Starling's issuer
issues workload certificates; every other case changes one thing in it.
"""
import argparse
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)


def load(cert_path, key_path):
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    return cert, key


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca(cn, signer, signer_key=None, path_length=None):
    """A CA certificate for `cn`: self-signed when `signer` is None, else signed by (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = (name(cn), key) if signer is None else (signer.subject, signer_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - HOUR)
        .not_valid_after(NOW + 24 * HOUR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if signer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def leaf(issuer, issuer_key, sans, *, not_before=None, not_after=None, eku="both", is_ca=False):
    """A workload leaf as Starling's issuer makes it (CA:FALSE, digitalSignature, serverAuth and
    clientAuth, the identity's DNS and URI SANs), with the given changes."""
    key = ec.generate_private_key(ec.SECP256R1())
    dns = [s for s in sans if isinstance(s, x509.DNSName)]
    cn = dns[0].value if dns else "no-mesh-identity"
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - HOUR)
        .not_valid_after(not_after or NOW + 2 * HOUR)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=False,
                encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    usages = {"both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
              "server": [ExtendedKeyUsageOID.SERVER_AUTH], "none": None}[eku]
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def identity_sans(ns, sa, trust_domain):
    return [x509.DNSName(f"{sa}.{ns}.serviceaccount.identity.starling.{trust_domain}"),
            x509.UniformResourceIdentifier(f"spiffe://{trust_domain}/ns/{ns}/sa/{sa}")]


def write(outdir, case, cert, key, intermediates):
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(outdir, case + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(outdir, case + ".crt"), "wb") as f:
        f.write(pem(cert))
    with open(os.path.join(outdir, case + ".chain.pem"), "wb") as f:
        f.write(b"".join(pem(c) for c in intermediates))
    with open(os.path.join(outdir, case + ".pem"), "wb") as f:
        f.write(pem(cert) + b"".join(pem(c) for c in intermediates))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root_crt"); p.add_argument("root_key"); p.add_argument("issuer_crt"); p.add_argument("issuer_key")
    p.add_argument("outdir")
    p.add_argument("--namespace", default="test")
    p.add_argument("--service-account", default="tester")
    p.add_argument("--trust-domain", default="cluster.local")
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    root, root_key = load(a.root_crt, a.root_key)
    issuer, issuer_key = load(a.issuer_crt, a.issuer_key)
    sans = identity_sans(a.namespace, a.service_account, a.trust_domain)

    def case(name, *, signer=(issuer, issuer_key), chain=None, **changes):
        cert, key = leaf(signer[0], signer[1], changes.pop("sans", sans), **changes)
        write(a.outdir, name, cert, key, [issuer] if chain is None else chain)

    case("valid")
    case("expired", not_before=NOW - 3 * HOUR, not_after=NOW - HOUR)
    case("not-yet-valid", not_before=NOW + HOUR, not_after=NOW + 3 * HOUR)
    # Another root, its own issuer: the same identity, a chain the mesh never issued.
    other_root, other_root_key = ca("identity.starling.cluster.local", None)
    other_issuer, other_issuer_key = ca("identity.starling.cluster.local", other_root, other_root_key, path_length=0)
    case("other-root", signer=(other_issuer, other_issuer_key), chain=[other_issuer])
    # The mesh's root and issuer, an identity of another trust domain.
    case("other-trust-domain", sans=identity_sans(a.namespace, a.service_account, "other.example"))
    case("server-auth-only", eku="server")
    case("no-eku", eku="none")
    case("ca-leaf", is_ca=True)
    # Intermediates straight from the root (the mesh issuer's path length 0 forbids any below it).
    int1, int1_key = ca("intermediate-1.mtls-refusal", root, root_key)
    int2, int2_key = ca("intermediate-2.mtls-refusal", int1, int1_key)
    int3, int3_key = ca("intermediate-3.mtls-refusal", int2, int2_key)
    case("two-intermediates", signer=(int2, int2_key), chain=[int2, int1])
    case("three-intermediates", signer=(int3, int3_key), chain=[int3, int2, int1])
    case("ip-san", sans=[x509.IPAddress(ipaddress.ip_address("127.66.0.200"))])
    case("ip-and-identity-san", sans=sans + [x509.IPAddress(ipaddress.ip_address("127.66.0.200"))])


if __name__ == "__main__":
    main()
