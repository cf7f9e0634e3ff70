/**
 * Imports every network backend implementation so that each registers its
 * `-netdev` type (see {@linkcode registerNetdev}).
 *
 * @module
 */

export { registerNetdev } from "./netdev.ts";
