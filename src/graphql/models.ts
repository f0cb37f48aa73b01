import type { CustomerRecord } from '../backends/data/types.js';
import type { Tenant } from '../tenancy/tenant.js';

/** Parent values of the object types that are not backed by a table row (codegen mappers). */
export type TenantParent = Tenant;
export interface ViewerParent {
  subject: string;
  scopes: readonly string[];
  tenant: Tenant;
}
export interface CustomerConnectionParent {
  rows: CustomerRecord[];
  hasNextPage: boolean;
}
export interface ModelInfoParent {
  name: string;
  backend: string;
  model: string;
  version: string | null;
  features: string[];
  thresholds: { label: string; min: number }[];
}
