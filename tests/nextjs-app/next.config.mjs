// Fixture for tests/nextjs_e2e.rs. Type errors are the editor's business, not the test's: skipping
// the type check keeps `next build` short on a 2-core machine.
const config = {
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
  // How a Next.js app tells a shared cache which tags a page carries (`next start` never sends
  // its own `x-next-cache-tags`): the same tags the page's data cache uses.
  async headers() {
    return [{ source: '/blog/:slug', headers: [{ key: 'Cache-Tag', value: 'posts,post-:slug' }] }];
  },
};

export default config;
