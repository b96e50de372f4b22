import StarlingCore
import Testing

/// Inputs found by the fuzz targets (tests/fuzz, docs/fuzzing.md), kept as tests.
@Suite struct FuzzFindingTests {
    /// `resources` target: YAML's `.inf`/`.nan` (and floats too large for a Double) decoded to
    /// non-finite doubles, which the store's JSON writes as null: the stored resource differed
    /// from the applied one, and re-applying the same file was "configured" every time.
    @Test(arguments: [".inf", "-.Inf", ".nan", "1e999", "!!float .inf"])
    func nonFiniteNumbersAreRefused(scalar: String) throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: scalars}\nspec:\n  infinity: \(scalar)\n"
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.code == .invalidValue)
        #expect(error.fieldPath == "spec.infinity")
        #expect(error.description.contains("not a finite number"))
    }

    @Test func quotedInfinityStaysAStringAndRoundTrips() throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: scalars}\nspec:\n  infinity: \".inf\"\n"
        let resource = try Fixtures.one(text)
        #expect(resource.spec["infinity"] == .string(".inf"))
        #expect(try ResourceDecoder.decodeStored(ResourceEncoder.compactJSON(resource)) == resource)
        #expect(try ResourceDecoder.decode(ResourceEncoder.yaml([resource]), source: "yaml") == [resource])
    }

    /// `quantity-duration` target: a fraction was scaled as (fraction / scale) × unit in floating
    /// point, so `19.032218211s` read as 19032218210 ns, and a formatted duration did not read back.
    @Test func fractionalDurationsAreExactToTheNanosecond() throws {
        #expect(try GoDuration.nanoseconds("19.032218211s") == 19_032_218_211)
        #expect(try GoDuration.nanoseconds("1.000000001s") == 1_000_000_001)
        #expect(try GoDuration.nanoseconds("2.999999ms") == 2_999_999)
        let fuzzed = try GoDuration.nanoseconds("392.317203636859551932m")
        #expect(fuzzed == 23_539_032_218_211)
        #expect(GoDuration.format(nanoseconds: fuzzed) == "6h32m19.032218211s")
        #expect(try GoDuration.nanoseconds(GoDuration.format(nanoseconds: fuzzed)) == fuzzed)
    }

    /// `resources` target: `get -o yaml` wrote every key as `key: value`, but a YAML reader takes
    /// at most 1024 characters as such a key, so a resource with a longer key did not read back.
    @Test func keysLongerThanAYAMLImplicitKeyReadBack() throws {
        // The fuzzer's input: JSON with raw newlines in a key, which the decoder reads as flow YAML.
        let text = #"""
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scalars"}, "spec": {"int": 84, "negative": -7, "hex": 31, "octal": "0o17", "float": 1.5, "exp": "1e3", "yes11": true, "on11": true, "bool": true, "nullTilde": null, "nullWord": null, "empty": null, "quotedInt": "42", "single     MTAwMDAwMFoXDTM2MTIwMTAwMDAwMFowKjEoMCYGA1UEAwwfaWRlbnRpdHkuc3Rh
                  cmxpbmcuY2x1c3Rlci5sb2NhbDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDyy
                  pQqfyRbwI/UJjEkXPACGTVxg0DdidyJBTbQ+91blQyoe15lOsaqplLXggNOa5Ah6
                  53eR3TlSg6OXjmFtfTWjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQD
                  AgEGMB0GA1UdDgQWBBRQl79oyBBr/B42mchV8oTBsfsxvjAKBggqhkjOPQQDAgNI
                  ADBFAiAKOJqb9gPHY/+27DO2hxyHwAgi4S3OQRof9qylCiPWEAIhAIDidgdDa9/0
                  7Rc7fpZOR2GKP4xhbOwP+yXa/U3LcQRY
                  -----END CERTIFICATE-----
                issuer:
                  certificatePEM: |
                    -----BEGIN CERTIFICATE-----
                    MIIBtzCCAV6gAwIBAgIQUbSLC2OQxk9A+lzR4GQfdzAKBggqhkjOPQQDAjAqMSgw
                    JgYDVQQDDB9pZGVudGl0eS5zdGFybGluZy5jbHVzdGVyLmxvY2FsMB4XDTI2MTIw
                    MTAwMDAwMFoXDTI3MTIwMTAwMDAwMFowKjEoMCYGA1UEAwwfaWRlbnRpdHkuc3Rh
                    cmxpbmcuY2x1c3Rlci5sb2NhbDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABORJ
                    mG4qYOUe/Kc4+r5O7s6N10cTaw4FntgnNdQmzIUVPL/zBTvAGdds3SYDGgvsI5iS
                    RWohvn9WI/hhfJvmONijZjBkMBIGA1UdEwEB/wQIMAYBAf8CAQAwDgYDVR0PAQH/
                    BAQDAgEGMB0GA1UdDgQWBBQTH2nl2Ue13SkDs7DgpI6Fh6FatTAfBgNVHSMEGDAW
                    gBRQl79oyBBr/B42mchV8oTBsfsxvjAKBggqhkjOPQQDAgNHADBEAiBhjwdWHS8V
                    lelzXaL3njf04FkgFfZyHU/Ft2EXaLMr/wIgdjqQZkRqiokeMy3CS3PVOLc48vPw
                    VD/VS9gcjOLkiB8=
                    Q\u2713", "taggedString": "12"}}
            """#
        let decoded = try ResourceDecoder.decode(text, source: "fuzz")
        let key = try #require(decoded.first?.spec.keys.first { $0.count > 1024 })
        #expect(key.hasPrefix("single"))
        #expect(try ResourceDecoder.decode(ResourceEncoder.yaml(decoded), source: "yaml") == decoded)

        var resource = try #require(decoded.first)
        let long = "é \"" + String(repeating: "k", count: 1100)
        let nested = JSONObject([(long, .array([.int(1), .object(JSONObject([(long, .string("v"))]))]))])
        resource.body["spec"] = .object(JSONObject([(long, .object(nested)), ("list", .array([.object(nested)]))]))
        let yaml = ResourceEncoder.yaml([resource])
        #expect(yaml.contains("? é"))
        #expect(try ResourceDecoder.decode(yaml, source: "yaml") == [resource])
    }
}
