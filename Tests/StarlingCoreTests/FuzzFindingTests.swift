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
}
