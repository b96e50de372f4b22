// Tests of StarlingTLS live in this target (MeshTLS*Tests.swift).
import StarlingTLS
