import { permanentRedirect } from 'next/navigation';

export default function Moved() {
  permanentRedirect('/products/b');
}
