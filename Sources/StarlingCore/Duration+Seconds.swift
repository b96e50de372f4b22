extension Duration {
    /// The duration in (fractional) milliseconds, for figures people read.
    @inlinable public var inMilliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

extension Duration {
    /// The duration in (fractional) seconds, for timers and SQL intervals.
    @inlinable public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
