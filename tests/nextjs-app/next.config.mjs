// Fixture for tests/nextjs_e2e.rs. Type errors are the editor's business, not the test's: skipping
// the type check keeps `next build` short on a 2-core machine.
const config = {
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
};

export default config;
