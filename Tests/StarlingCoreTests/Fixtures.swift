import StarlingCore

/// Documents shared by the suites.
enum Fixtures {
    /// The walkthrough's split, verbatim.
    static let walkthroughSplit = """
        apiVersion: split.smi-spec.io/v1alpha1
        kind: TrafficSplit
        metadata:
          name: podinfo
          namespace: test
        spec:
          service: podinfo
          backends:
          - service: podinfo
            weight: 50
          - service: podinfo-workload2
            weight: 50

        """

    static let pem = """
        -----BEGIN CERTIFICATE-----
        MIIBszCCAVmgAwIBAgIRAKvNMAoGCCqGSM49BAMCMCkxJzAlBgNVBAMTHmlkZW50
        aXR5LnN0YXJsaW5nLmNsdXN0ZXIubG9jYWwwHhcNMjQwMTAxMDAwMDAwWhcNMzQw
        -----END CERTIFICATE-----

        """

    static let service = """
        apiVersion: v1
        kind: Service
        metadata:
          name: podinfo
          namespace: test
          labels:
            app: podinfo
            mirror.starling.io/exported: "true"
        spec:
          ports:
          - name: http
            port: 9898
            targetPort: 9898
            appProtocol: http
          selector:
            app: podinfo

        """

    static let workload = """
        apiVersion: starling.io/v1alpha1
        kind: Workload
        metadata:
          name: podinfo-1
          namespace: test
          labels:
            app: podinfo
        spec:
          address: 127.1.0.5
          ports:
          - name: http
            port: 4143
            appPort: 9898
          serviceAccount: podinfo
          identity: podinfo.test.serviceaccount.identity.starling.cluster.local

        """

    static let link = """
        apiVersion: multicluster.starling.io/v1alpha1
        kind: Link
        metadata:
          name: workload2
          namespace: starling-multicluster
        spec:
          targetClusterName: workload2
          apiAddress: 127.2.0.1:8086
          credentialsSecret: cluster-credentials-workload2
          gatewayAddress: 127.2.0.2
          gatewayIdentity: starling-gateway.starling-multicluster.serviceaccount.identity.starling.cluster.local

        """

    static func meshConfig(pem: String = Fixtures.pem) -> String {
        let indented = pem.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n")
        return """
            apiVersion: config.starling.io/v1alpha1
            kind: MeshConfig
            metadata:
              name: mesh
            spec:
              clusterName: workload1
              identity:
                trustAnchorsPEM: |
            \(indented)
                issuer:
                  certificatePEM: |
            \(indented)
                  keySecret:
                    name: issuer-key
                    namespace: starling

            """
    }

    /// Decodes `text` expecting exactly one resource.
    static func one(_ text: String, source: String = "test.yaml") throws -> Resource {
        let resources = try ResourceDecoder.decode(text, source: source)
        guard resources.count == 1 else { throw FixtureError.expectedOne(resources.count) }
        return resources[0]
    }

    /// The error `decode` throws for `text`, or nil when it decodes.
    static func decodeError(_ text: String, source: String = "test.yaml") -> ResourceError? {
        do {
            _ = try ResourceDecoder.decode(text, source: source)
            return nil
        } catch {
            return error
        }
    }

    enum FixtureError: Error { case expectedOne(Int) }
}
