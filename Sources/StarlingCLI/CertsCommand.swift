import ArgumentParser
import Crypto
import Foundation
import StarlingIdentity
import X509

/// `starling certs`: make and read trust anchors and issuers, with the `step certificate` flags.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create and inspect CA certificates (root trust anchors, identity issuers), step-CLI compatible.",
        subcommands: [Create.self, Inspect.self]
    )

    /// A failure of the identity library (or anything else) as a ``CLIError``.
    static func cliError(_ error: any Error) -> CLIError {
        if let error = error as? CLIError { return error }
        return CLIError("\(error)")
    }

    /// Reads and parses the certificates in `path`; `source` says where the path came from.
    static func readCertificates(_ path: String, source: String) throws(CLIError) -> [Certificate] {
        do {
            let text = try IdentityFiles.read(path)
            return try PEMFile.certificates(pem: text, source: source)
        } catch {
            throw cliError(error)
        }
    }
}

extension CertsCommand {
    /// `starling certs create SUBJECT CRT KEY`, like `step certificate create`.
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an ECDSA P-256 key and a certificate: a root CA, an intermediate CA (issuer) or a leaf.",
            discussion: """
                Same flags as `step certificate create`. The walkthrough's trust root and issuer:

                  starling certs create identity.starling.cluster.local root.crt root.key
                      --profile root-ca --no-password --insecure
                  starling certs create identity.starling.cluster.local issuer.crt issuer.key
                      --profile intermediate-ca --not-after 8760h --no-password --insecure
                      --ca root.crt --ca-key root.key

                Keys are written unencrypted with mode 0600; certificates with mode 0644.
                """
        )

        @Argument(help: "The subject common name, e.g. identity.starling.cluster.local.")
        var subject: String

        @Argument(help: ArgumentHelp("Where to write the certificate (PEM).", valueName: "crt-file"))
        var crtFile: String

        @Argument(help: ArgumentHelp("Where to write the private key (PEM, PKCS#8, mode 0600).", valueName: "key-file"))
        var keyFile: String

        @Option(help: "The kind of certificate: root-ca, intermediate-ca or leaf.")
        var profile: String = CertificateRequest.Profile.leaf.name

        @Option(help: ArgumentHelp("The certificate of the CA that signs this one (not for root-ca).", valueName: "crt-file"))
        var ca: String?

        @Option(help: ArgumentHelp("The private key of the --ca certificate.", valueName: "key-file"))
        var caKey: String?

        @Option(
            help: ArgumentHelp(
                "When the certificate expires: a duration from now (8760h, 90m, 1h30m) or an RFC 3339 time "
                    + "(default: 10 years for root-ca, 1 year for intermediate-ca, 24h for leaf).",
                valueName: "time|duration"
            )
        )
        var notAfter: String?

        @Option(
            help: ArgumentHelp(
                "When the certificate becomes valid: a duration from now (-5m) or an RFC 3339 time (default: now).",
                valueName: "time|duration"
            )
        )
        var notBefore: String?

        @Option(help: ArgumentHelp("A subject alternative name: DNS name, IP address or URI (repeatable).", valueName: "name"))
        var san: [String] = []

        @Flag(help: "Do not encrypt the private key (requires --insecure).")
        var noPassword = false

        @Flag(help: "Allow writing an unencrypted private key (with --no-password).")
        var insecure = false

        @Flag(help: "Overwrite the certificate and key files if they exist.")
        var force = false

        func validate() throws {
            guard let profile = CertificateRequest.Profile(name: profile) else {
                let names = CertificateRequest.Profile.all.map(\.name).joined(separator: ", ")
                throw ValidationError("--profile \(self.profile) is not one of \(names)")
            }
            guard noPassword, insecure else {
                throw ValidationError(
                    "refusing to write an unencrypted private key: pass --no-password --insecure (starling does not encrypt keys)"
                )
            }
            guard crtFile != keyFile else {
                throw ValidationError("the certificate and the key would both be written to \(crtFile); give two different files")
            }
            if profile == .rootCA {
                if ca != nil || caKey != nil {
                    throw ValidationError("--profile root-ca makes a self-signed certificate; do not pass --ca or --ca-key")
                }
            } else {
                switch (ca, caKey) {
                case (nil, nil):
                    throw ValidationError("--profile \(profile) needs the signing CA: pass --ca CRT and --ca-key KEY")
                case (.some, nil):
                    throw ValidationError("--ca needs --ca-key KEY, the private key of \(ca ?? "the CA")")
                case (nil, .some):
                    throw ValidationError("--ca-key needs --ca CRT, the certificate of that key")
                case (.some, .some):
                    break
                }
            }
            let now = Date()
            for (flag, value) in [("--not-after", notAfter), ("--not-before", notBefore)] {
                guard let value else { continue }
                do {
                    _ = try CertificateFactory.parseTime(value, now: now)
                } catch {
                    throw ValidationError("\(flag) \(error.message)")
                }
            }
            if !force {
                for path in [crtFile, keyFile] where FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("\(path) already exists; refusing to overwrite it (pass --force to replace it)")
                }
            }
        }

        func run() throws {
            let now = Date()
            guard let profile = CertificateRequest.Profile(name: profile) else {
                throw CLIError("--profile \(self.profile) is not one of root-ca, intermediate-ca, leaf")
            }
            do {
                var issuer: (certificate: Certificate, key: P256.Signing.PrivateKey)?
                if let ca, let caKey {
                    let certificate = try PEMFile.certificate(pem: try IdentityFiles.read(ca), source: "--ca \(ca)")
                    let key = try PEMFile.privateKey(pem: try IdentityFiles.read(caKey), source: "--ca-key \(caKey)")
                    issuer = (certificate, key)
                }
                let request = CertificateRequest(
                    subject: subject,
                    profile: profile,
                    notBefore: try notBefore.map { value throws(IdentityError) in try CertificateFactory.parseTime(value, now: now) },
                    notAfter: try notAfter.map { value throws(IdentityError) in try CertificateFactory.parseTime(value, now: now) },
                    sans: san,
                    issuer: issuer
                )
                let (certificate, key) = try CertificateFactory.create(request, now: now)
                let keyExisted = FileManager.default.fileExists(atPath: keyFile)
                try IdentityFiles.writeKey(pem: PEMFile.pem(key), to: keyFile, overwrite: force)
                do {
                    try IdentityFiles.writeCertificate(pem: PEMFile.pem(certificate), to: crtFile, overwrite: force)
                } catch {
                    // Do not leave a key behind without its certificate.
                    if !keyExisted { try? FileManager.default.removeItem(atPath: keyFile) }
                    throw error
                }
                let summary = CertificateFactory.summarize(certificate, now: now)
                print("✓ \(profile) certificate for \(subject) saved to \(crtFile) (valid until \(summary.notAfter))")
                print("✓ private key saved to \(keyFile) (unencrypted, mode 0600)")
            } catch {
                if let ca, let caKey, let identityError = error as? IdentityError, identityError.code == .keyMismatch {
                    throw CLIError(identityError.description, hint: "--ca-key \(caKey) must be the private key of --ca \(ca)")
                }
                throw CertsCommand.cliError(error)
            }
        }
    }

    /// `starling certs inspect CRT [--roots FILE] [-o json]`.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a certificate's subject, issuer, validity, CA constraints, SANs and fingerprint.",
            discussion: """
                Reads PEM certificates made by starling, step or openssl. Further certificates in the file \
                are used as intermediates. With --roots, also verifies the certificate against those roots \
                and exits non-zero if it does not verify.
                """
        )

        /// How `inspect` prints.
        enum Format: String, ExpressibleByArgument, CaseIterable {
            case text
            case json
        }

        @Argument(help: ArgumentHelp("The certificate (PEM) to inspect.", valueName: "crt-file"))
        var crtFile: String

        @Option(help: ArgumentHelp("Trust anchors (PEM bundle) to verify the certificate against.", valueName: "file"))
        var roots: String?

        @Option(name: [.short, .customLong("output")], help: "Output format: text or json.")
        var output: Format = .text

        func run() throws {
            let (output, failure) = try render(now: Date())
            print(output, terminator: "")
            if let failure { throw failure }
        }

        /// What `inspect` prints, and the error to exit with when `--roots` was given and the
        /// certificate does not verify against them.
        func render(now: Date) throws(CLIError) -> (output: String, failure: CLIError?) {
            let certificates = try CertsCommand.readCertificates(crtFile, source: crtFile)
            let anchors = try roots.map { path throws(CLIError) in try CertsCommand.readCertificates(path, source: "--roots \(path)") }
            let summary = CertificateFactory.summarize(certificates[0], chain: Array(certificates.dropFirst()), roots: anchors, now: now)
            var output: String
            switch self.output {
            case .text:
                output = summary.text()
                if certificates.count > 1 {
                    output += "(\(certificates.count - 1) more certificate(s) in \(crtFile), used as intermediates)\n"
                }
            case .json:
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                do {
                    output = String(decoding: try encoder.encode(summary), as: UTF8.self) + "\n"
                } catch {
                    throw CLIError("cannot encode the summary of \(crtFile) as JSON: \(error)")
                }
            }
            var failure: CLIError?
            if let roots, let verification = summary.verification, verification != "ok" {
                failure = CLIError(
                    "\(crtFile) does not verify against the roots in \(roots): \(verification)",
                    hint: "check that it was signed (through the intermediates in the file) by one of those roots"
                )
            }
            return (output, failure)
        }
    }
}
