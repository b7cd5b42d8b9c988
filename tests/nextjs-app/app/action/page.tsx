import { readData } from '../../lib/data';

export const revalidate = 3600;

// A Server Action: posted with `Next-Action`, never cached.
async function ping(formData: FormData) {
  'use server';
  console.log(`action ping ${formData.get('note') ?? ''}`);
}

export default function Action() {
  return (
    <main id="action">
      action page data: {readData().home}
      <form action={ping}>
        <input name="note" defaultValue="hi" />
        <button type="submit">ping</button>
      </form>
    </main>
  );
}
