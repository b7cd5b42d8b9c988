import { readData } from '../lib/data';

// ISR with a long period: only on-demand revalidation refreshes it during the test.
export const revalidate = 3600;

export default function Home() {
  const data = readData();
  return <main id="home">home data: {data.home}</main>;
}
