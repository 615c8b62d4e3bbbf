// Every CustomResourceDefinition the operator serves, in install order.

import { claimCRD, poolCRD, templateCRD } from "./pools-crd.js";
import { sandboxCRD } from "./sandbox-crd.js";
import { snapshotCRD } from "./snapshot-crd.js";

export const CRDS = [sandboxCRD, templateCRD, poolCRD, claimCRD, snapshotCRD];
