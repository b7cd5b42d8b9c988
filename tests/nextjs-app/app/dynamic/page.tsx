import { cookies, headers } from 'next/headers';

// Reading cookies() and headers() makes the page dynamic: rendered per request, never ISR.
export default async function Dynamic() {
  const who = (await cookies()).get('who')?.value ?? 'nobody';
  const agent = (await headers()).get('user-agent') ?? 'none';
  return (
    <main id="dynamic">
      dynamic for {who} with {agent} at {Date.now()}
    </main>
  );
}
