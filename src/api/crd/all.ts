// Every CustomResourceDefinition the operator serves, in install order.
import { sandboxCRD } from "./crd.js";
import { claimCRD, poolCRD, templateCRD } from "./pools-crd.js";
import { snapshotCRD } from "./snapshot-crd.js";

export const CRDS = [sandboxCRD, templateCRD, poolCRD, claimCRD, snapshotCRD];
