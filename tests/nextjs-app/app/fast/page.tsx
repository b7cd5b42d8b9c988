// ISR with a one-second period: the test lets it go stale to see Next confirm the proxy's
// copy with a 304 (conditional refresh).
export const revalidate = 1;

export default function Fast() {
  return <main id="fast">a page regenerated every second</main>;
}
