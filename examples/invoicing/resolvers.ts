/**
 * The escape hatch: resolvers for what no source directive expresses. They receive the same
 * tenant-scoped context as the generated ones (`data`, `loaders`, `predictions`, `tenant`).
 */
interface AccountRecord {
  name: string;
  country: string;
  region: string | null;
}

export const resolvers = {
  Account: {
    label: (account: AccountRecord) =>
      `${account.name} (${account.region ? `${account.region}, ` : ''}${account.country})`,
  },
};
