/**
 * Imports every network backend implementation so that each registers its
 * `-netdev` type (see {@linkcode registerNetdev}): `hub` (a virtual hub,
 * shared by every machine in the process) and `dgram` (one frame per UDP
 * datagram, compatible with QEMU).
 *
 * @module
 */

import "./hub.ts";
import "./dgram.ts";

export { registerNetdev } from "./netdev.ts";
