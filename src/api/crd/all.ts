// Every CustomResourceDefinition the operator serves, in install order.
import { sandboxCRD } from "./crd.js";
import { claimCRD, poolCRD, templateCRD } from "./pools-crd.js";

export const CRDS = [sandboxCRD, templateCRD, poolCRD, claimCRD];
