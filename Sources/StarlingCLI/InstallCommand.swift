import ArgumentParser
import Foundation
import StarlingCore
import StarlingIdentity
import StarlingStore
import X509

/// `starling install --identity-trust-anchors-file ... --identity-issuer-certificate-file ...
/// --identity-issuer-key-file ...`: prints the mesh's resources for `starling apply -f -`.
/// Every certificate is checked before anything is printed, so a bad issuer is refused before
/// it can reach a cluster.
struct InstallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install", abstract: "Print the mesh's resources (identity, config) for `starling apply -f -`.")

    @OptionGroup var context: ContextOptions

    enum Target: String, ExpressibleByArgument, CaseIterable {
        case mesh, systemd
    }

    @Option(help: "What to print: mesh (the resources to apply) or systemd (unit files for the controller and proxies).")
    var target: Target = .mesh

    @Option(help: "PEM file of the trust anchors (root CA certificates) shared by every linked cluster.")
    var identityTrustAnchorsFile: String?

    @Option(help: "PEM file of the issuer (intermediate CA) certificate, optionally followed by its chain.")
    var identityIssuerCertificateFile: String?

    @Option(help: "PEM file of the issuer's private key (PKCS#8 or SEC1).")
    var identityIssuerKeyFile: String?

    @Option(help: "How long workload certificates are valid, as a Go duration (proxies renew them before they expire).")
    var identityIssuanceLifetime: String = "24h0m0s"

    @Option(help: "systemd: the controllers' store, postgres://USER@HOST:PORT/DB (its password goes in the environment file).")
    var store: String?

    @Option(name: .customLong("replica"), help: "systemd: a controller replica's API address HOST:PORT (repeat for each).")
    var replicas: [String] = []

    @Option(help: "systemd: the user the services run as.")
    var user: String = "starling"

    @Option(help: "systemd: where the starling binary is installed.")
    var binary: String = "/usr/local/bin/starling"

    @Option(help: "The cluster's name (default: the current context's cluster).")
    var clusterName: String?

    @Option(help: "The trust domain of workload identities.")
    var trustDomain: String = "cluster.local"

    @Option(name: .shortAndLong, help: "Output: yaml or json.")
    var output: OutputFormat = .yaml

    func validate() throws {
        guard output == .yaml || output == .json else { throw ValidationError("-o must be yaml or json") }
        switch target {
        case .mesh:
            for (value, flag) in [
                (identityTrustAnchorsFile, "--identity-trust-anchors-file"),
                (identityIssuerCertificateFile, "--identity-issuer-certificate-file"),
                (identityIssuerKeyFile, "--identity-issuer-key-file"),
            ] where value == nil {
                throw ValidationError("missing \(flag) (the mesh's identity; see `starling certs create`)")
            }
            do {
                guard try GoDuration.parse(identityIssuanceLifetime) >= MeshIdentitySettings.minimumIssuanceLifetime else {
                    throw ValidationError(
                        "--identity-issuance-lifetime \(identityIssuanceLifetime): must be at least "
                            + GoDuration.format(MeshIdentitySettings.minimumIssuanceLifetime))
                }
            } catch let error as ResourceError {
                throw ValidationError("--identity-issuance-lifetime: \(error.message)")
            }
        case .systemd:
            guard !replicas.isEmpty else {
                throw ValidationError("--target systemd needs --replica HOST:PORT for every controller replica")
            }
            for replica in replicas where HostPort(parsing: replica) == nil {
                throw ValidationError("--replica \(replica) is not HOST:PORT")
            }
            if let store {
                let url: PostgresStoreURL
                do { url = try PostgresStoreURL(store, environment: [:]) } catch { throw ValidationError("--store: \(error.message)") }
                if url.password != nil {
                    throw ValidationError("--store carries a password; put PGPASSWORD in /etc/starling/controller.env instead")
                }
            } else if replicas.count > 1 {
                throw ValidationError("\(replicas.count) replicas need a shared --store postgres://USER@HOST:PORT/DB")
            }
        }
    }

    func run() async throws {
        if target == .systemd { return try printSystemdUnits() }
        guard let identityTrustAnchorsFile, let identityIssuerCertificateFile, let identityIssuerKeyFile else { return }
        let cluster: String
        if let clusterName {
            cluster = clusterName
        } else {
            do { cluster = try context.resolve().clusterName } catch {
                throw CLIError("no cluster name: \(error)", hint: "pass --cluster-name NAME, or select a context (--context, STARLING_CONFIG)")
            }
        }
        let resources = try Self.resources(
            anchorsFile: identityTrustAnchorsFile, issuerFile: identityIssuerCertificateFile,
            keyFile: identityIssuerKeyFile, clusterName: cluster, trustDomain: trustDomain,
            issuanceLifetime: try GoDuration.parse(identityIssuanceLifetime), now: Date())
        print(output == .json ? ResourceEncoder.json(resources) : ResourceEncoder.yaml(resources), terminator: output == .json ? "\n" : "")
    }

    private func printSystemdUnits() throws {
        let cluster = try clusterName ?? context.resolve().clusterName
        let endpoints = replicas.compactMap { HostPort(parsing: $0) }
        let settings = SystemdUnits.Settings(
            binary: binary, user: user, clusterName: cluster, store: store,
            apiAddress: "0.0.0.0:\(endpoints.first?.port ?? 8086)", replicas: replicas,
            otherReplicaNames: Array(Set(endpoints.map(\.host))).sorted())
        print(SystemdUnits.controller(settings))
        print(SystemdUnits.gateway(settings))
        print(SystemdUnits.proxy(settings), terminator: "")
    }

    static let namespace = "starling"
    static let issuerSecretName = "starling-identity-issuer"

    /// Reads and checks the certificates, and builds the documents to apply.
    static func resources(
        anchorsFile: String, issuerFile: String, keyFile: String, clusterName: String, trustDomain: String,
        issuanceLifetime: Duration = MeshIdentitySettings.defaultIssuanceLifetime, now: Date
    ) throws -> [Resource] {
        let anchorsPEM = try InputFile.read(anchorsFile)
        let issuerPEM = try InputFile.read(issuerFile)
        let keyPEM = try InputFile.read(keyFile)
        do {
            let trust = try TrustBundle(pem: anchorsPEM, source: anchorsFile)
            let chain = try PEMFile.certificates(pem: issuerPEM, source: issuerFile)
            let key = try PEMFile.privateKey(pem: keyPEM, source: keyFile)
            guard let issuer = chain.first else { throw CLIError("\(issuerFile): no certificate") }
            let status = try trust.validateIssuer(certificate: issuer, chain: Array(chain.dropFirst()), key: key, now: now)
            if status.expiresWithin(days: 60) {
                FileHandle.standardError.write(Data("warning: the issuer certificate expires soon (\(status.notAfter))\n".utf8))
            }
        } catch let error as IdentityError {
            throw CLIError(error.message, hint: "nothing was printed; `starling certs inspect FILE` shows a certificate")
        }
        let secret = Resource(
            name: issuerSecretName, namespace: namespace,
            spec: SecretSpec(type: "kubernetes.io/tls", data: ["tls.crt": Array(issuerPEM.utf8), "tls.key": Array(keyPEM.utf8)]))
        let mesh = Resource(
            name: "mesh",
            spec: MeshConfigSpec(
                clusterName: clusterName, trustDomain: trustDomain,
                identity: MeshIdentitySettings(
                    trustAnchorsPEM: anchorsPEM,
                    issuer: MeshIssuer(certificatePEM: issuerPEM, keySecret: SecretReference(name: issuerSecretName, namespace: namespace)),
                    issuanceLifetime: issuanceLifetime)))
        return [Resource(name: namespace, spec: NamespaceSpec()), secret, mesh]
    }
}
